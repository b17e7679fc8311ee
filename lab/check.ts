// All-pairs connectivity: every pod pings every other pod's address (one fping per source pod),
// and the answers are shown as a matrix (row: from, column: to).
import type { LabState, LabPod } from './state.ts';
import { runner, tools, inNetns, sleep } from './sys.ts';

export interface PingMatrix {
  pods: LabPod[];
  /** ok[i][j]: pods[i] reached pods[j] (true on the diagonal) */
  ok: boolean[][];
  failures: { from: string; to: string; ip: string }[];
  pairs: number;
  ms: number;
}

/** One echo request with a 1 s wait, retried: the first packet can race ARP on a fresh link. */
export async function pingFrom(netns: string, ip: string, attempts = 3): Promise<boolean> {
  for (let i = 0; i < attempts; i++) {
    const r = await runner.run(inNetns(netns, [tools.ping, '-n', '-q', '-c', '1', '-W', '1', ip]), { timeoutMs: 5000 });
    if (r.exitCode === 0) return true;
    if (i + 1 < attempts) await sleep(100);
  }
  return false;
}

/** Runs `jobs` with at most `limit` in flight (each ping is a process; the machine is small). */
async function pool<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return out;
}

/**
 * Which of `ips` answer from inside `netns`: one fping process for all of them (an echo to each,
 * retried with backoff: the first packet can race ARP on a fresh link), instead of one ping
 * process per pair. fping -a prints the addresses that answered.
 */
export async function reachableFrom(netns: string, ips: string[], retries = 3): Promise<Set<string>> {
  if (ips.length === 0) return new Set();
  const r = await runner.run(inNetns(netns, [tools.fping, '-a', '-q', '-r', String(retries), '-t', '500', '-i', '2', ...ips]), { timeoutMs: 60_000 });
  // exit 0: all alive; 1: some unreachable; anything else: fping itself failed.
  if (r.exitCode !== 0 && r.exitCode !== 1) throw new Error(`fping in ${netns} exited ${r.exitCode}: ${r.stderr.trim()}`);
  return new Set(r.stdout.split('\n').map((l) => l.trim()).filter(Boolean));
}

export async function pingAll(s: LabState, opts: { retries?: number; concurrency?: number } = {}): Promise<PingMatrix> {
  const started = performance.now();
  const pods = s.pods.filter((p) => p.state === 'ready' && p.ip);
  const ok = pods.map((_, i) => pods.map((__, j) => i === j));
  const jobs = pods.map((from, i) => async () => {
    const targets = pods.filter((_, j) => j !== i).map((p) => p.ip!);
    const alive = await reachableFrom(from.netns, targets, opts.retries ?? 3);
    pods.forEach((to, j) => {
      if (j !== i) ok[i]![j] = alive.has(to.ip!);
    });
  });
  await pool(jobs, opts.concurrency ?? 8);
  const failures = pods.flatMap((from, i) => pods.flatMap((to, j) => (ok[i]![j] ? [] : [{ from: from.name, to: to.name, ip: to.ip! }])));
  return { pods, ok, failures, pairs: pods.length * (pods.length - 1), ms: Math.round(performance.now() - started) };
}

export function renderMatrix(m: PingMatrix): string {
  if (m.pods.length === 0) return 'no pods with an address\n';
  const names = m.pods.map((p) => p.name);
  const w = Math.max(5, ...names.map((n) => n.length));
  const lw = Math.max(w, 9);
  const cell = (text: string) => text.padStart(w);
  const lines = [
    `${'from \\ to'.padEnd(lw)}  ${names.map(cell).join(' ')}`,
    ...m.pods.map((p, i) => `${p.name.padEnd(lw)}  ${m.ok[i]!.map((v, j) => cell(i === j ? '-' : v ? 'ok' : 'FAIL')).join(' ')}`),
    '',
    ...m.pods.map((p) => `${p.name.padEnd(lw)}  ${p.ip} (node ${p.node})`),
    '',
    m.failures.length === 0
      ? `all ${m.pairs} pairs reachable (${m.ms} ms)`
      : `${m.failures.length} of ${m.pairs} pairs UNREACHABLE: ${m.failures.map((f) => `${f.from} -> ${f.to} (${f.ip})`).join(', ')}`,
  ];
  return lines.join('\n') + '\n';
}
