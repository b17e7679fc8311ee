// A private mount namespace for a test's processes, held open by a `sleep` started with
// `unshare`: what a process entering it mounts (a dir over /run, a read-only /proc/sys as a
// container has) stays there and goes with it. The copied mount table holds every network
// namespace mounted on the host (other tests' too): those copies are dropped at once, or they
// would keep alive namespaces their owners delete. destroy() stops, by PID, every process left
// in it, then the holder.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { sh } from './netns.ts';
import { sleepSync } from './e2e.ts';
import { pidAlive } from '../../lib/process.ts';

export function mountNsOf(pid: number | 'self'): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return null;
  }
}

/** Mount points of namespace files in the mount namespace of `pid`. */
export function nsfsMounts(pid: number): string[] {
  return readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')
    .filter((l) => / - nsfs /.test(l))
    .map((l) => l.split(' ')[4]!);
}

/** Sends `signal`, then SIGKILL after `graceMs`; returns once the process is gone. */
export function stopPidSync(pid: number, graceMs = 3000, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid, signal);
  } catch { /* gone */ }
  const deadline = Date.now() + graceMs;
  while (pidAlive(pid) && Date.now() < deadline) sleepSync(20);
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch { /* gone */ }
  while (pidAlive(pid)) sleepSync(10);
}

export class PrivateMountNs {
  private constructor(readonly holderPid: number, readonly ns: string) {}

  static create(): PrivateMountNs {
    const own = mountNsOf('self');
    const holder = spawn('unshare', ['--mount', '--propagation', 'private', 'sleep', 'infinity'], { detached: true, stdio: 'ignore' });
    holder.unref();
    if (holder.pid === undefined) throw new Error('could not start unshare');
    const deadline = Date.now() + 5000;
    for (;;) {
      const ns = mountNsOf(holder.pid);
      if (ns && ns !== own) {
        const m = new PrivateMountNs(holder.pid, ns);
        for (const mp of nsfsMounts(holder.pid)) m.run(['umount', '--lazy', mp], true);
        return m;
      }
      if (Date.now() > deadline || !pidAlive(holder.pid)) {
        stopPidSync(holder.pid, 0, 'SIGKILL');
        throw new Error('unshare did not make a mount namespace');
      }
      sleepSync(5);
    }
  }

  /** argv that runs `argv` inside this mount namespace (and the network namespace at `netns`). */
  enter(argv: string[], netns?: string): string[] {
    return ['nsenter', '-t', String(this.holderPid), '-m', ...(netns ? [`--net=${netns}`] : []), '--', ...argv];
  }

  run(argv: string[], allowFail = false) {
    return sh(this.enter(argv), { allowFail });
  }

  /** Every process in this mount namespace but the holder. */
  processes(): number[] {
    return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number)
      .filter((pid) => pid !== this.holderPid && mountNsOf(pid) === this.ns);
  }

  destroy(): void {
    for (const p of this.processes()) stopPidSync(p, 0, 'SIGKILL');
    stopPidSync(this.holderPid, 1000);
  }
}
