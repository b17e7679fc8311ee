// host-gw's node state: a route to every other node's block via that node's underlay address.
import type { NodePlanner } from '../../mode.ts';
import { desiredRoutes, routeSteps, parseRoutes, ownRoutesQuery } from '../../node-routes.ts';
import type { HostGwConfig } from './config.ts';

export const nodePlanner: NodePlanner<HostGwConfig> = {
  observe: (ctx) => ({ routes: ownRoutesQuery(ctx.facts, ctx.routeProtocol) }),
  plan(ctx, observed) {
    const desired = desiredRoutes(ctx.self.name, ctx.nodes);
    return routeSteps(desired, parseRoutes(observed.routes), ctx.facts, ctx.routeProtocol);
  },
  routes: (observed) => parseRoutes(observed.routes),
};
