// A throwaway etcd for the lab and the tests: its own data dir, fast election timers
// (healthy in ~70 ms instead of ~1 s), optionally inside a network namespace.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon } from '../executor/runner.ts';
import { findTool } from '../executor/facts.ts';
import { inNetnsArgv } from '../lib/netns.ts';
import { runner, stopPid } from './sys.ts';

export { stopPid, pidAlive } from './sys.ts';

export interface EtcdInstance {
  pid: number;
  endpoint: string;
  dataDir: string;
  logFile: string;
}

export interface EtcdOptions {
  /** netns path to run in (default: the caller's) */
  netns?: string;
  host: string;
  clientPort: number;
  peerPort: number;
  dir: string;
  name?: string;
  /** called with the PID as soon as etcd is started, before it is healthy (crash-safe records) */
  onStart?: (pid: number) => void;
}

function inNetns(netns: string | undefined, argv: string[]): string[] {
  return netns ? inNetnsArgv(findTool('nsenter'), netns, argv) : argv;
}

export function etcdAvailable(): string | null {
  return existsSync(findTool('etcd')) && existsSync(findTool('etcdctl')) ? null : 'needs etcd and etcdctl (Debian packages etcd-server, etcd-client)';
}

export async function startEtcd(o: EtcdOptions): Promise<EtcdInstance> {
  const name = o.name ?? 'etcd0';
  const client = `http://${o.host}:${o.clientPort}`;
  const peer = `http://${o.host}:${o.peerPort}`;
  const dataDir = join(o.dir, 'etcd-data');
  const logFile = join(o.dir, 'etcd.log');
  const argv = [findTool('etcd'), '--name', name, '--data-dir', dataDir,
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${name}=${peer}`,
    '--heartbeat-interval', '10', '--election-timeout', '100', '--logger', 'zap', '--log-level', 'warn'];
  const pid = await startDaemon(inNetns(o.netns, argv), { logFile });
  o.onStart?.(pid);
  const inst = { pid, endpoint: client, dataDir, logFile };
  try {
    await waitHealthy(inst, o.netns, 10_000);
  } catch (e) {
    await stopPid(pid); // an etcd that never became healthy is not left running
    throw e;
  }
  return inst;
}

/** Polls `etcdctl endpoint health` until etcd answers. */
export async function waitHealthy(inst: EtcdInstance, netns: string | undefined, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await runner.run(inNetns(netns, [findTool('etcdctl'), '--endpoints', inst.endpoint, '--dial-timeout', '300ms', '--command-timeout', '500ms', 'endpoint', 'health']));
    if (r.exitCode === 0) return;
    if (Date.now() > deadline) throw new Error(`etcd at ${inst.endpoint} not healthy after ${timeoutMs} ms: ${r.stderr.trim()} (log: ${inst.logFile})`);
    await new Promise((res) => setTimeout(res, 50));
  }
}
