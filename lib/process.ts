// Processes known by PID: alive or not, and stopping one (SIGTERM, then SIGKILL after a grace).
import { readFileSync } from 'node:fs';

/** True while `pid` runs; a zombie (exited, not reaped yet by its parent) counts as gone. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/PID/stat: "pid (comm) S ...": the state letter follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Stops a process by PID and waits until it is gone (SIGKILL after `graceMs`). A stopped
 *  (SIGSTOP) process is continued so it can act on the signal. */
export async function stopPid(pid: number, graceMs = 3000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const alive = () => pidAlive(pid);
  if (!alive()) return;
  try {
    process.kill(pid, signal);
    if (signal !== 'SIGKILL') process.kill(pid, 'SIGCONT');
  } catch { /* gone */ }
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (alive()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch { /* gone */ }
    while (alive()) await new Promise((r) => setTimeout(r, 10));
  }
}
