// Small system helpers of the lab: commands through the project's runner (argv only, no shell),
// namespace paths, polling, and processes identified by PID *and* command line, so a recycled
// PID is never signalled.
import { readFileSync } from 'node:fs';
import { ProcessRunner, tail, type RunResult, type RunOptions } from '../executor/runner.ts';
import { findTool } from '../executor/facts.ts';
import { inNetnsArgv, netnsPath, NETNS_DIR } from '../lib/netns.ts';
import { pidAlive, stopPid } from '../lib/process.ts';

export { netnsPath, NETNS_DIR, pidAlive, stopPid };
export const runner = new ProcessRunner();

export const tools = {
  ip: findTool('ip'),
  nsenter: findTool('nsenter'),
  ping: findTool('ping'),
  fping: findTool('fping'),
  sysctl: findTool('sysctl'),
  env: findTool('env'),
};

export class LabError extends Error {}

/** argv run inside a named netns. */
export function inNetns(netns: string, argv: string[]): string[] {
  return inNetnsArgv(tools.nsenter, netnsPath(netns), argv);
}

/** Runs argv and throws with its stderr when it fails. */
export async function must(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await runner.run(argv, opts);
  if (r.exitCode !== 0) throw new LabError(`${argv.join(' ')} exited ${r.exitCode}: ${tail(r.stderr)}`);
  return r;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value other than null/false, or throws `what` at the deadline. */
export async function waitUntil<T>(probe: () => Promise<T | null | false>, timeoutMs: number, what: () => string, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new LabError(`timed out after ${timeoutMs} ms: ${what()}`);
    await sleep(everyMs);
  }
}

/** True when `pid` is alive and its command line mentions `marker` (a path inside the lab dir). */
export function ownedPid(pid: number | null, marker: string): pid is number {
  if (!pid) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    // Empty while the process is between exec's (nsenter becoming node) or a zombie: only a
    // live process in the middle of an exec counts as ours then.
    if (cmdline === '') return pidAlive(pid);
    return cmdline.split('\0').some((a) => a.includes(marker));
  } catch {
    return false;
  }
}

/** Stops a lab process if it is still the one we started; SIGKILL after the grace period. */
export async function stopOwned(pid: number | null, marker: string, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
  if (ownedPid(pid, marker)) await stopPid(pid, graceMs, signal);
}

/** The last lines of a log file, for error messages. */
export function logTail(path: string, lines = 8): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
