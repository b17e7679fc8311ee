// What uninstall removes of host-gw's node state: the node bridge, when it is testcni's (its MAC
// is the one testcni derives from its name and gateway), and the routes to other nodes' blocks
// that carry testcni's route protocol number.
import { HOST, type Step } from '../../../model/plan.ts';
import type { NodeTeardownPlanner } from '../../mode.ts';
import { bridgeMac } from '../../names.ts';
import { parseRoutes, ownRoutesQuery } from '../../node-routes.ts';
import type { HostGwConfig } from './config.ts';

type AddrJson = { ifname?: string; address?: string; linkinfo?: { info_kind?: string }; addr_info?: { family?: string; local?: string; prefixlen?: number }[] };

export const teardown: NodeTeardownPlanner<HostGwConfig> = {
  observe: (ctx) => ({
    bridge: { ns: HOST, mech: 'exec', argv: [ctx.facts.tools.ip, '-j', '-d', 'addr', 'show', 'dev', ctx.config.modeConfig.bridge], expect: { $exit: 0 } },
    routes: ownRoutesQuery(ctx.facts, ctx.routeProtocol),
  }),
  plan(ctx, observed) {
    const ip = ctx.facts.tools.ip;
    const { bridge } = ctx.config.modeConfig;
    const steps: Step[] = [];
    const kept: string[] = [];
    const link = Array.isArray(observed.bridge) ? (observed.bridge[0] as AddrJson | undefined) : undefined;
    if (link) {
      const gateways = (link.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
      const ours = link.linkinfo?.info_kind === 'bridge' && gateways.some((g) => bridgeMac(bridge, g) === link.address);
      if (ours) {
        steps.push({
          id: `link.del:host:${bridge}`, kind: 'link.del', scope: 'node', ns: HOST, mech: 'ip', argv: [ip, 'link', 'del', 'dev', bridge],
          idempotent: false, undo: null, undoReason: 'uninstall', probe: { ns: HOST, mech: 'links', argv: [ip, '-j', 'link', 'show'], expect: { $none: { ifname: bridge } } },
          describe: `delete bridge ${bridge} (gateway ${gateways.join(', ')})`,
        });
      } else kept.push(`${bridge}: not testcni's (not a bridge with the MAC testcni derives from its name and gateway), left alone`);
    }
    for (const r of parseRoutes(observed.routes)) {
      steps.push({
        id: `route.del:host:${r.dst}`, kind: 'route.del', scope: 'node', ns: HOST, mech: 'ip',
        argv: [ip, 'route', 'del', r.dst, 'via', r.via, 'proto', String(ctx.routeProtocol)],
        idempotent: false, undo: null, undoReason: 'uninstall', probe: null,
        describe: `delete route ${r.dst} via ${r.via} (proto ${ctx.routeProtocol})`,
      });
    }
    return { steps, kept };
  },
};
