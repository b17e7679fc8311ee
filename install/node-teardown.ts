// Node-scoped state each mode leaves on a node (what pods share and DEL never removes), and how
// `testcni uninstall` finds and removes it. One entry per mode: the mode registry can take these
// entries over as they are (NODE_TEARDOWNS is the list to wire to it). Each entry observes the
// node and returns removals only for what it can tell is testcni's; it changes nothing itself.
import type { NetworkConfig } from '../model/config.ts';
import type { Runner } from '../executor/runner.ts';
import { bridgeMac } from '../planner/names.ts';
import { parseRoutes } from '../planner/node-routes.ts';
import type { HostGwConfig } from '../planner/modes/host-gw/config.ts';

export interface TeardownContext {
  /** the network as installed (from the conflist) */
  network: NetworkConfig;
  /** the route protocol number the agent tags its routes with */
  routeProtocol: number;
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

async function json(ctx: TeardownContext, argv: string[]): Promise<unknown[] | null> {
  const r = await ctx.runner.run(argv);
  if (r.exitCode !== 0) return null;
  try {
    return JSON.parse(r.stdout || '[]') as unknown[];
  } catch {
    return null;
  }
}

type AddrJson = { ifname?: string; address?: string; linkinfo?: { info_kind?: string }; addr_info?: { family?: string; local?: string; prefixlen?: number }[] };

/** host-gw: the node bridge (ours when its MAC is the one derived from its name and gateway) and
 *  the routes to other nodes' blocks that the agent tagged with its protocol number. */
export const hostGwTeardown: NodeTeardown = {
  mode: 'host-gw',
  describe: 'host-gw bridge and node routes',
  async find(ctx) {
    const out: TeardownFindings = { removals: [], kept: [] };
    const bridge = (ctx.network.modeConfig as HostGwConfig).bridge;
    const links = (await json(ctx, [ctx.ip, '-j', '-d', 'addr', 'show', 'dev', bridge])) as AddrJson[] | null;
    const link = links?.[0];
    if (link) {
      const gateways = (link.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
      const ours = link.linkinfo?.info_kind === 'bridge' && gateways.some((g) => bridgeMac(bridge, g) === link.address);
      if (ours) out.removals.push({ describe: `delete bridge ${bridge} (gateway ${gateways.join(', ')})`, argv: [ctx.ip, 'link', 'del', bridge] });
      else out.kept.push(`${bridge}: not testcni's (not a bridge with the MAC testcni derives from its name and gateway), left alone`);
    }
    const routes = parseRoutes(await json(ctx, [ctx.ip, '-j', 'route', 'show', 'proto', String(ctx.routeProtocol)]));
    for (const r of routes) {
      out.removals.push({ describe: `delete route ${r.dst} via ${r.via} (proto ${ctx.routeProtocol})`, argv: [ctx.ip, 'route', 'del', r.dst, 'via', r.via, 'proto', String(ctx.routeProtocol)] });
    }
    return out;
  },
};

/** Every mode's node teardown, in the order uninstall runs them. */
export const NODE_TEARDOWNS: readonly NodeTeardown[] = [hostGwTeardown];

/** The teardowns that apply to a network: its own mode's (another mode's state is not there). */
export function teardownsFor(mode: string, all: readonly NodeTeardown[] = NODE_TEARDOWNS): NodeTeardown[] {
  return all.filter((t) => t.mode === mode);
}
