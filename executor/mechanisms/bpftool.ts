// bpftool steps (map updates, loads): one `bpftool -j batch file -` per unit. bpftool stops at
// the first failing command and has no -force; its JSON output holds one entry per command it
// processed, so the failing line is the last entry. Forced, the rest runs in a new batch.
// Late-bound ifindexes (model/plan.ts ifindexToken) are read once per unit, right before it runs.
import type { Ns, Step } from '../../model/plan.ts';
import { inNs } from '../namespaces.ts';
import { failureText } from '../runner.ts';
import { readIfindexes, bindArgv, MissingLink } from '../ifindex.ts';
import { argvOf, batchLine } from './lines.ts';
import type { Mechanism, MechanismContext, RunUnitOptions, StepOutcome } from './types.ts';

type Entry = { output?: { error?: string } | null };
type BpftoolStep = Extract<Step, { mech: 'bpftool' }>;

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
    // One entry per command run (with its `output`); bpftool's own closing error has none.
    entries = (JSON.parse(r.stdout) as Entry[]).filter((e) => 'output' in e);
  } catch { /* no attribution possible */ }
  const last = entries?.[entries.length - 1];
  const failedAt = entries && last?.output?.error !== undefined ? entries.length : null;
  const base = { exitCode: r.exitCode, stderr: failureText(r.stderr || (last?.output?.error ?? '')), ms: r.ms };
  if (failedAt === null) {
    // No command failed, yet the batch did (bpftool reports an error of its own after some
    // commands, e.g. "reading batch file failed" on a stale errno): what ran is unknown.
    for (const s of steps) out.set(s.id, { status: 'unknown', ...base, argv });
    return { out, stoppedAt: null };
  }
  steps.slice(0, failedAt - 1).forEach((s) => out.set(s.id, { status: 'applied', ms: r.ms }));
  out.set(steps[failedAt - 1]!.id, { status: 'failed', ...base, argv: inNs(ctx.facts, ns, argvOf(steps[failedAt - 1]!)) });
  return { out, stoppedAt: failedAt };
}

/** The steps with their ifindexes in place; `missing`: the first step naming a link that is not
 *  there (it and the steps after it are left as they are). */
async function bind(steps: Step[], ns: Ns, ctx: MechanismContext): Promise<{ steps: Step[]; missing: { at: number; why: string } | null }> {
  const devs = steps.flatMap((s) => (s as BpftoolStep).ifindexOf ?? []);
  if (devs.length === 0) return { steps, missing: null };
  let indexes: Map<string, number>;
  try {
    indexes = await readIfindexes(ns, devs, ctx.facts, ctx.runner, ctx.sys);
  } catch (e) {
    if (!(e instanceof MissingLink)) throw e;
    // Find out which step cannot be bound: read them one by one (rare: a link vanished).
    indexes = new Map();
    for (let i = 0; i < steps.length; i++) {
      try {
        for (const [d, x] of await readIfindexes(ns, (steps[i] as BpftoolStep).ifindexOf ?? [], ctx.facts, ctx.runner, ctx.sys)) indexes.set(d, x);
      } catch (e2) {
        if (!(e2 instanceof MissingLink)) throw e2;
        return { steps: steps.slice(0, i).map((s) => withIndexes(s, indexes)).concat(steps.slice(i)), missing: { at: i, why: e2.message } };
      }
    }
  }
  return { steps: steps.map((s) => withIndexes(s, indexes)), missing: null };
}

function withIndexes(s: Step, indexes: Map<string, number>): Step {
  const b = s as BpftoolStep;
  return b.ifindexOf?.length ? { ...b, argv: bindArgv(b.argv, indexes) } : s;
}

export const bpftoolMechanism: Mechanism = {
  batches: true,
  async run(steps, ns, ctx, opts: RunUnitOptions) {
    const all = new Map<string, StepOutcome>();
    let rest = steps;
    while (rest.length > 0) {
      const { steps: ready, missing } = await bind(rest, ns, ctx);
      const runnable = missing ? ready.slice(0, missing.at) : ready;
      let stoppedAt: number | null = null;
      if (runnable.length > 0) {
        const once = await runOnce(runnable, ns, ctx);
        for (const [id, o] of once.out) all.set(id, o);
        stoppedAt = once.stoppedAt;
      }
      if (stoppedAt === null && missing) {
        const s = rest[missing.at]!;
        all.set(s.id, { status: 'failed', exitCode: 1, stderr: missing.why, argv: inNs(ctx.facts, ns, argvOf(s)) });
        stoppedAt = missing.at + 1;
      }
      if (stoppedAt === null || !opts.force) break;
      rest = rest.slice(stoppedAt);
    }
    return all;
  },
};
