// Groups consecutive steps into execution units: steps of a batching mechanism in one
// namespace share one process (one `ip -batch -`, one pod `sysctl -w`, …).
import type { Mechanism, Ns, Step } from '../model/plan.ts';
import { MECHANISMS } from './mechanisms/index.ts';

export interface Unit {
  mech: Mechanism;
  ns: Ns;
  steps: Step[];
}

function program(step: Step): string {
  return step.mech === 'file' || step.mech === 'wait' ? '' : step.argv[0]!;
}

export function unitOf(step: Step): Unit {
  return { mech: step.mech, ns: step.ns, steps: [step] };
}

export function canJoin(unit: Unit, step: Step): boolean {
  return MECHANISMS[unit.mech].batches && unit.mech === step.mech && unit.ns === step.ns && program(unit.steps[0]!) === program(step);
}
