// Node-scoped state each mode leaves on a node (what pods share and DEL never removes), and how
// `testcni uninstall` finds and removes it: each mode's node plan says so itself (its
// `teardown`, planner/mode.ts); this runs its queries and hands its steps to uninstall. Nothing
// here changes the node.
import type { NetworkConfig } from '../model/config.ts';
import { argvOf, type NodeFacts } from '../model/plan.ts';
import type { Runner } from '../executor/runner.ts';
import { queryOutput } from '../executor/probe.ts';
import { realSystem } from '../executor/system.ts';
import { resolveTools, netnsId } from '../executor/facts.ts';
import type { AnyMode } from '../planner/mode.ts';
import { MODES } from '../planner/registry.ts';

export interface TeardownContext {
  /** the network as installed (from the conflist) */
  network: NetworkConfig;
  /** the route protocol number the agent tags its routes with */
  routeProtocol: number;
  /** the agent's directories: `run` (its socket's), `state` */
  dirs: { run: string; state: string };
  ip: string;
  runner: Runner;
}

/** One thing to remove: a command (argv, no shell), with a line for the operator. */
export interface Removal {
  describe: string;
  argv: string[];
}

export interface TeardownFindings {
  removals: Removal[];
  /** things found but left alone, and why */
  kept: string[];
}

export interface NodeTeardown {
  /** the mode's registry name */
  mode: string;
  describe: string;
  find(ctx: TeardownContext): Promise<TeardownFindings>;
}

/**
 * A mode's teardown as uninstall runs it: its queries (through the runner), then its plan, as
 * removals for uninstall to run one by one and report.
 */
export function modeTeardown(mode: AnyMode): NodeTeardown | null {
  const planner = mode.node?.teardown;
  if (!planner) return null;
  return {
    mode: mode.name,
    describe: `${mode.name} node state`,
    async find(ctx) {
      const tctx = { config: ctx.network, routeProtocol: ctx.routeProtocol, dirs: ctx.dirs, facts: teardownFacts(mode, ctx) };
      const observed: Record<string, unknown> = {};
      for (const [name, probe] of Object.entries(planner.observe(tctx))) {
        const out = await queryOutput(probe, tctx.facts, ctx.runner, realSystem);
        observed[name] = out.json ?? (out.exitCode === 0 ? out.stdout : null);
      }
      const { steps, kept } = planner.plan(tctx, observed);
      return { removals: steps.map((s) => ({ describe: s.describe, argv: argvOf(s) })), kept };
    },
  };
}

function teardownFacts(mode: AnyMode, ctx: TeardownContext): NodeFacts {
  const tools = [...mode.tools(ctx.network), ...(mode.node?.tools?.(ctx.network) ?? []), ...(mode.node?.teardown?.tools ?? [])];
  const netns = netnsId();
  return { tools: { ...resolveTools(tools), ip: ctx.ip }, hostPid: process.pid, uplink: null, uplinkMtu: null, ...(netns ? { netns } : {}) };
}

/** Every mode's node teardown, from the registry, in its order. */
export const NODE_TEARDOWNS: readonly NodeTeardown[] = MODES.all().map(modeTeardown).filter((t): t is NodeTeardown => t !== null);

/** The teardowns that apply to a network: its own mode's (another mode's state is not there). */
export function teardownsFor(mode: string, all: readonly NodeTeardown[] = NODE_TEARDOWNS): NodeTeardown[] {
  return all.filter((t) => t.mode === mode);
}
