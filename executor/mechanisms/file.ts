// File writes (a BIRD config, …): replaced atomically in-process, in the node's namespace only
// (a pod namespace has no files of its own). Probed by content.
import { HOST, type Step } from '../../model/plan.ts';
import type { Mechanism, StepOutcome } from './types.ts';

type FileStep = Extract<Step, { mech: 'file' }>;

export const fileMechanism: Mechanism = {
  batches: false,
  async run(steps, ns, ctx) {
    const out = new Map<string, StepOutcome>();
    for (const s of steps as FileStep[]) {
      if (ns !== HOST) {
        out.set(s.id, { status: 'failed', exitCode: 1, stderr: `file writes run in the node's namespace, not ${ns}`, argv: [] });
        continue;
      }
      try {
        ctx.sys.writeFile(s.path, s.content, s.mode);
        out.set(s.id, { status: 'applied' });
      } catch (e) {
        out.set(s.id, { status: 'failed', exitCode: 1, stderr: (e as Error).message, argv: ['write', s.path] });
      }
    }
    return out;
  },
};
