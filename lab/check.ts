// All-pairs connectivity: every pod pings every other pod's address, and the answers are
// shown as a matrix (row: from, column: to).
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

export async function pingAll(s: LabState, opts: { attempts?: number; concurrency?: number } = {}): Promise<PingMatrix> {
  const started = performance.now();
  const pods = s.pods.filter((p) => p.state === 'ready' && p.ip);
  const ok = pods.map((_, i) => pods.map((__, j) => i === j));
  const jobs: (() => Promise<void>)[] = [];
  pods.forEach((from, i) =>
    pods.forEach((to, j) => {
      if (i !== j) jobs.push(async () => void (ok[i]![j] = await pingFrom(from.netns, to.ip!, opts.attempts ?? 3)));
    }),
  );
  await pool(jobs, opts.concurrency ?? 16);
  const failures = pods.flatMap((from, i) => pods.flatMap((to, j) => (ok[i]![j] ? [] : [{ from: from.name, to: to.name, ip: to.ip! }])));
  return { pods, ok, failures, pairs: jobs.length, ms: Math.round(performance.now() - started) };
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
