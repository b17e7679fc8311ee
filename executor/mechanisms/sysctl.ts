// sysctl steps: in the node's own namespace written in-process through /proc (no process);
// in a pod namespace one `sysctl -q -e -w K=V …` process for the whole unit.
import { HOST, type Step } from '../../model/plan.ts';
import { inNs } from '../namespaces.ts';
import { tail } from '../runner.ts';
import type { Mechanism, StepOutcome } from './types.ts';

type SysctlStep = Extract<Step, { mech: 'sysctl' }>;

export const sysctlMechanism: Mechanism = {
  batches: true,
  async run(steps, ns, ctx) {
    const units = steps as SysctlStep[];
    const out = new Map<string, StepOutcome>();
    if (ns === HOST) {
      for (const s of units) {
        try {
          ctx.sys.writeSysctl(s.key, s.value);
          out.set(s.id, { status: 'applied' });
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          // -e semantics: a key this kernel lacks (IPv6 disabled) is not an error.
          out.set(s.id, err.code === 'ENOENT' ? { status: 'applied' } : { status: 'failed', exitCode: 1, stderr: err.message, argv: s.argv });
        }
      }
      return out;
    }
    const argv = inNs(ctx.facts, ns, [ctx.facts.tools.sysctl, '-q', '-e', '-w', ...units.map((s) => `${s.key}=${s.value}`)]);
    const r = await ctx.runner.run(argv);
    for (const s of units) {
      out.set(s.id, r.exitCode === 0
        ? { status: 'applied', ms: r.ms }
        : { status: units.length === 1 ? 'failed' : 'unknown', exitCode: r.exitCode, stderr: tail(r.stderr), ms: r.ms, argv });
    }
    return out;
  },
};
