// The planner's entry: (request, lease, node facts) -> Plan. Pure: no I/O, no clock, no env.
import type { Plan, Step } from '../model/plan.ts';
import type { AnyMode, PlanRequest } from './mode.ts';
import { negate } from './predicate.ts';
import { canonicalJson, sortKeys } from '../lib/canonical-json.ts';
import { digest128 } from '../lib/hash.ts';

export function inputsDigest(req: PlanRequest): string {
  return digest128(canonicalJson(req));
}

/**
 * The DEL steps for an ADD plan: the undo of every pod-scope step, newest first. `only`
 * restricts them to the steps a journal says may have been applied.
 */
export function teardownSteps(addSteps: Step[], only?: ReadonlySet<string>): Step[] {
  return addSteps
    .filter((s) => s.scope === 'pod' && s.undo !== null && (!only || only.has(s.id)))
    .reverse()
    .map((s): Step => ({
      ...s.undo!,
      id: `undo:${s.id}`,
      kind: s.kind,
      scope: 'pod',
      idempotent: false,
      undo: null,
      undoReason: 'this is an undo',
      // "already undone" is "the forward step is not in effect".
      probe: s.probe ? { ...s.probe, expect: negate(s.probe.expect) } : null,
      describe: `undo: ${s.describe}`,
    }));
}

export function compile(req: PlanRequest, mode: AnyMode): Plan {
  if (req.command === 'ADD') mode.preflight?.(req);
  const add = mode.planAdd(req);
  const steps = req.command === 'DEL' ? teardownSteps(add) : add;
  const plan: Plan = {
    command: req.command,
    network: req.config.name,
    containerId: req.containerId,
    ifName: req.ifName,
    netns: req.netns,
    mode: req.config.mode,
    inputsDigest: inputsDigest(req),
    steps,
    result: req.command === 'ADD' ? mode.resultOf(req) : null,
  };
  return sortKeys(plan) as Plan;
}
