// What every mechanism gets and gives back: a unit of consecutive steps of one mechanism in one
// namespace in, the outcome of each step out.
import type { NodeFacts, Ns, Step } from '../../model/plan.ts';
import type { Runner } from '../runner.ts';
import type { NodeSystem } from '../system.ts';
import type { Logger } from '../../lib/log.ts';

export interface MechanismContext {
  runner: Runner;
  facts: NodeFacts;
  sys: NodeSystem;
  log?: Logger;
}

/** applied: ran and succeeded; failed: its command failed; unknown: its unit failed on a line
 *  that could not be attributed. A step missing from the outcomes never ran. */
export interface StepOutcome {
  status: 'applied' | 'failed' | 'unknown';
  exitCode?: number;
  stderr?: string;
  ms?: number;
  /** the command that failed, as run (for error reports) */
  argv?: string[];
}

export interface RunUnitOptions {
  /** keep going past a failed step (teardown, node convergence) instead of stopping there */
  force: boolean;
}

export interface Mechanism {
  /** whether consecutive steps of this mechanism in one namespace may share one unit */
  batches: boolean;
  run(steps: Step[], ns: Ns, ctx: MechanismContext, opts: RunUnitOptions): Promise<Map<string, StepOutcome>>;
}
