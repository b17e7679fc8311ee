// host-gw's node state: a route to every other node's block via that node's underlay address,
// forwarding on the devices traffic is routed in through, no redirects out of the bridge (the
// agent is their one owner on a node that runs one; ADD only repairs what its probes find wrong).
import { HOST, type Probe, type Step } from '../../../model/plan.ts';
import type { NodeContext, NodePlanner } from '../../mode.ts';
import { desiredRoutes, routeSteps, parseRoutes, ownRoutesQuery } from '../../node-routes.ts';
import { forwardingSteps, noRedirectSteps } from '../../steps.ts';
import type { HostGwConfig } from './config.ts';
import { teardown } from './teardown.ts';

/** The node sysctls host-gw's datapath needs: forwarding in from the uplink and the bridge,
 *  and no redirects out of the bridge (see pod.ts). */
function nodeSysctls(ctx: NodeContext<HostGwConfig>): Step[] {
  const { bridge } = ctx.config.modeConfig;
  return [...forwardingSteps(ctx.facts, [ctx.facts.uplink, bridge]), ...noRedirectSteps(ctx.facts, bridge)];
}

export const nodePlanner: NodePlanner<HostGwConfig> = {
  observe(ctx) {
    const queries: Record<string, Probe> = { routes: ownRoutesQuery(ctx.facts, ctx.routeProtocol) };
    for (const s of nodeSysctls(ctx)) if (s.mech === 'sysctl') queries[s.key] = { ns: HOST, mech: 'sysctl', key: s.key, argv: [ctx.facts.tools.sysctl, '-n', '-e', s.key], expect: { $text: s.value } };
    return queries;
  },
  plan(ctx, observed) {
    const desired = desiredRoutes(ctx.self.name, ctx.nodes);
    // A device that does not exist (the bridge before the first pod) reads empty: nothing to set.
    const fix = nodeSysctls(ctx).filter((s) => s.mech === 'sysctl' && typeof observed[s.key] === 'string' && observed[s.key] !== '' && String(observed[s.key]).trim() !== s.value);
    return [...fix, ...routeSteps(desired, parseRoutes(observed.routes), ctx.facts, ctx.routeProtocol)];
  },
  routes: (observed) => parseRoutes(observed.routes),
  teardown,
};
