// A throwaway etcd for datastore tests: lab/etcd.ts on 127.0.0.1 of the test's own netns (the
// root one) with ports the kernel just handed out, its data in a temp dir; destroy() (from an
// after hook, so also when a test fails) stops it and removes the dir. Tests in a file share
// one instance and keep apart by key prefix.
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startEtcd, stopPid, etcdAvailable, type EtcdInstance } from '../../lab/etcd.ts';
import type { EtcdSettings } from '../../agent/datastore/etcd-store.ts';

export { etcdAvailable };

/** A TCP port free on 127.0.0.1 right now (the kernel's choice; etcd binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export class TestEtcd {
  inst: EtcdInstance | null = null;
  private dir: string | null = null;
  private ports: { client: number; peer: number } | null = null;
  private paused = false;

  /** Nothing is started yet: run() starts it, destroy() (in an after hook) removes it all. */
  constructor(private readonly tag: string) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.ports!.client}`;
  }

  /** Starts etcd; again after stop(), on the same ports and data dir (a restart). */
  async run(): Promise<void> {
    this.dir ??= mkdtempSync(join(tmpdir(), `tcetcd-${this.tag}-`));
    this.ports ??= { client: await freePort(), peer: await freePort() };
    this.inst = await startEtcd({ host: '127.0.0.1', clientPort: this.ports.client, peerPort: this.ports.peer, dir: this.dir });
  }

  async stop(): Promise<void> {
    if (!this.inst) return;
    this.resume();
    await stopPid(this.inst.pid);
    this.inst = null;
  }

  /** Freezes etcd: connections stay open, nothing answers (a hung or partitioned datastore). */
  pause(): void {
    process.kill(this.inst!.pid, 'SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (!this.paused || !this.inst) return;
    process.kill(this.inst.pid, 'SIGCONT');
    this.paused = false;
  }

  settings(prefix: string, timeoutMs = 1000): EtcdSettings {
    return { endpoints: [this.endpoint], caFile: null, certFile: null, keyFile: null, prefix, dialTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs };
  }

  async destroy(): Promise<void> {
    try {
      await this.stop();
    } finally {
      if (this.dir) rmSync(this.dir, { recursive: true, force: true });
      this.dir = null;
    }
  }
}

let seq = 0;
/** A key prefix no other test (or earlier run on the same etcd) uses. */
export function uniqueKeyPrefix(tag: string): string {
  return `/tctest-${process.pid}-${++seq}-${tag}`;
}
