// `ip` and `tc` steps: one `ip -batch -` (or `tc -batch -`) process per unit. Both report a
// failed line as "Command failed -:N"; `-force` runs every line and reports each failure.
import type { Ns, Step } from '../../model/plan.ts';
import { inNs } from '../namespaces.ts';
import { tail } from '../runner.ts';
import { argvOf, batchLine } from './lines.ts';
import type { Mechanism, MechanismContext, RunUnitOptions, StepOutcome } from './types.ts';

/** Lines (1-based) that an iproute2 batch reported as failed. */
export function failedBatchLines(stderr: string): number[] {
  return [...stderr.matchAll(/Command failed -:(\d+)/g)].map((m) => Number(m[1]));
}

async function runBatch(steps: Step[], ns: Ns, ctx: MechanismContext, opts: RunUnitOptions): Promise<Map<string, StepOutcome>> {
  const argv = inNs(ctx.facts, ns, [argvOf(steps[0]!)[0]!, ...(opts.force ? ['-force'] : []), '-batch', '-']);
  const r = await ctx.runner.run(argv, { input: steps.map(batchLine).join('\n') + '\n' });
  ctx.log?.debug('unit', { steps: steps.map((s) => s.id), exitCode: r.exitCode, ms: r.ms });
  const out = new Map<string, StepOutcome>();
  if (r.exitCode === 0) {
    for (const s of steps) out.set(s.id, { status: 'applied', ms: r.ms });
    return out;
  }
  const base = { exitCode: r.exitCode, stderr: tail(r.stderr), ms: r.ms };
  const lines = failedBatchLines(r.stderr);
  if (lines.length === 0 || (!opts.force && lines.length !== 1)) {
    for (const s of steps) out.set(s.id, { status: 'unknown', ...base, argv });
    return out;
  }
  const failed = new Set(lines);
  // Without -force the batch stopped at the failed line: the lines after it never ran.
  const stopAt = opts.force ? Infinity : lines[0]!;
  steps.forEach((s, i) => {
    const line = i + 1;
    if (failed.has(line)) out.set(s.id, { status: 'failed', ...base, argv: inNs(ctx.facts, ns, argvOf(s)) });
    else if (line < stopAt) out.set(s.id, { status: 'applied', ms: r.ms });
  });
  return out;
}

export const ipMechanism: Mechanism = { batches: true, run: runBatch };
export const tcMechanism: Mechanism = { batches: true, run: runBatch };
