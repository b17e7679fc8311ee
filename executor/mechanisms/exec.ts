// Any other program (iptables, …): one process per step.
import { inNs } from '../namespaces.ts';
import { failureText } from '../runner.ts';
import { argvOf } from './lines.ts';
import type { Mechanism, StepOutcome } from './types.ts';

export const execMechanism: Mechanism = {
  batches: false,
  async run(steps, ns, ctx) {
    const out = new Map<string, StepOutcome>();
    for (const s of steps) {
      const argv = inNs(ctx.facts, ns, argvOf(s));
      const r = await ctx.runner.run(argv);
      ctx.log?.debug('unit', { steps: [s.id], exitCode: r.exitCode, ms: r.ms });
      out.set(s.id, r.exitCode === 0
        ? { status: 'applied', ms: r.ms }
        : { status: 'failed', exitCode: r.exitCode, stderr: failureText(r.stderr), ms: r.ms, argv });
    }
    return out;
  },
};
