// bpftool steps (map updates, loads): one `bpftool -j batch file -` per unit. bpftool stops at
// the first failing command and has no -force; its JSON output holds one entry per command it
// processed, so the failing line is the last entry. Forced, the rest runs in a new batch.
import type { Ns, Step } from '../../model/plan.ts';
import { inNs } from '../namespaces.ts';
import { tail } from '../runner.ts';
import { argvOf, batchLine } from './lines.ts';
import type { Mechanism, MechanismContext, RunUnitOptions, StepOutcome } from './types.ts';

type Entry = { output?: { error?: string } };

async function runOnce(steps: Step[], ns: Ns, ctx: MechanismContext): Promise<{ out: Map<string, StepOutcome>; stoppedAt: number | null }> {
  const argv = inNs(ctx.facts, ns, [argvOf(steps[0]!)[0]!, '-j', 'batch', 'file', '-']);
  const r = await ctx.runner.run(argv, { input: steps.map(batchLine).join('\n') + '\n' });
  ctx.log?.debug('unit', { steps: steps.map((s) => s.id), exitCode: r.exitCode, ms: r.ms });
  const out = new Map<string, StepOutcome>();
  if (r.exitCode === 0) {
    for (const s of steps) out.set(s.id, { status: 'applied', ms: r.ms });
    return { out, stoppedAt: null };
  }
  let entries: Entry[] | null = null;
  try {
    entries = JSON.parse(r.stdout) as Entry[];
  } catch { /* no attribution possible */ }
  const failedAt = entries && entries.length > 0 && entries[entries.length - 1]?.output?.error !== undefined ? entries.length : null;
  const base = { exitCode: r.exitCode, stderr: tail(r.stderr || (entries?.[entries.length - 1]?.output?.error ?? '')), ms: r.ms };
  if (failedAt === null) {
    for (const s of steps) out.set(s.id, { status: 'unknown', ...base, argv });
    return { out, stoppedAt: null };
  }
  steps.slice(0, failedAt - 1).forEach((s) => out.set(s.id, { status: 'applied', ms: r.ms }));
  out.set(steps[failedAt - 1]!.id, { status: 'failed', ...base, argv: inNs(ctx.facts, ns, argvOf(steps[failedAt - 1]!)) });
  return { out, stoppedAt: failedAt };
}

export const bpftoolMechanism: Mechanism = {
  batches: true,
  async run(steps, ns, ctx, opts: RunUnitOptions) {
    const all = new Map<string, StepOutcome>();
    let rest = steps;
    while (rest.length > 0) {
      const { out, stoppedAt } = await runOnce(rest, ns, ctx);
      for (const [id, o] of out) all.set(id, o);
      if (stoppedAt === null || !opts.force) break;
      rest = rest.slice(stoppedAt);
    }
    return all;
  },
};
