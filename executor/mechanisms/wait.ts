// Waits until links are operationally up. Carrier changes reach a device's operstate and its
// transmit queue through the kernel's linkwatch, which for a bridge may lag up to a second; a
// packet sent before then is dropped (the node's first ARP to the first pod of a fresh node).
// On a node, operstate is read from sysfs (no process); in a simulated node through `ip -j`.
import type { Step } from '../../model/plan.ts';
import { inNs } from '../namespaces.ts';
import type { Mechanism, MechanismContext, StepOutcome } from './types.ts';

type WaitStep = Extract<Step, { mech: 'wait' }>;

/** Polling delays (ms): quick first looks, then steadier ones, until the step's timeout. */
const DELAYS = [0, 1, 2, 5, 10, 20, 50, 100];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function operState(step: WaitStep, link: string, ctx: MechanismContext): Promise<string> {
  if (step.ns === 'host') {
    const fast = ctx.sys.operState(link);
    if (fast !== null) return fast.toLowerCase();
  }
  const r = await ctx.runner.run(inNs(ctx.facts, step.ns, [ctx.facts.tools.ip, '-j', 'link', 'show', 'dev', link]));
  if (r.exitCode !== 0) return 'absent';
  try {
    return String((JSON.parse(r.stdout) as { operstate?: string }[])[0]?.operstate ?? 'unknown').toLowerCase();
  } catch {
    return 'unknown';
  }
}

export const waitMechanism: Mechanism = {
  batches: false,
  async run(steps, _ns, ctx) {
    const out = new Map<string, StepOutcome>();
    for (const step of steps as WaitStep[]) {
      const started = Date.now();
      let pending = [...step.links];
      let states: string[] = [];
      for (let i = 0; ; i++) {
        states = await Promise.all(pending.map((l) => operState(step, l, ctx)));
        pending = pending.filter((_, j) => states[j] !== 'up');
        if (pending.length === 0 || Date.now() - started >= step.timeoutMs) break;
        await sleep(DELAYS[Math.min(i, DELAYS.length - 1)]!);
      }
      const ms = Date.now() - started;
      ctx.log?.debug('wait', { links: step.links, ms, pending });
      out.set(step.id, pending.length === 0
        ? { status: 'applied', ms }
        : { status: 'failed', exitCode: 1, ms, argv: ['wait', ...step.links],
          stderr: `not up after ${step.timeoutMs} ms: ${pending.map((l) => `${l} is ${states[step.links.indexOf(l)] ?? 'unknown'}`).join(', ')}` });
    }
    return out;
  },
};
