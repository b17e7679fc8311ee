// What uninstall removes of ipip's node state. The agent stops its BIRD when it stops; a BIRD
// still answering on the agent's control socket (the agent was killed) is stopped first, through
// that socket (`birdc down`: only the BIRD testcni started listens there). Then the blackhole of
// the node's block (the agent's route protocol), the routes BIRD left in the kernel (`persist`
// keeps them after BIRD stops: route protocol 12, inside the cluster subnet only), the tunnel's
// addresses in the cluster subnet, and BIRD's files (its config, which may hold passwords, log,
// PID file and socket, in the agent's directories). The kernel's fallback tunl0 cannot be
// deleted and is left; a tunnel device of another name is testcni's when it is the configured
// one and of kind ipip.
import { HOST, type Probe, type Step } from '../../../model/plan.ts';
import type { NodeTeardownPlanner, NodeTeardownContext } from '../../mode.ts';
import { parseCidr, contains, containsCidr } from '../../../lib/ipv4.ts';
import { BGP_DEFAULTS, BIRD_ROUTE_PROTOCOL } from '../../bird/view.ts';
import { tunnelOf, type IpipConfig } from './config.ts';
import { birdPaths } from './node.ts';

type Ctx = NodeTeardownContext<IpipConfig>;
type RouteJson = { dst?: string; type?: string; gateway?: string; dev?: string };
type LinkJson = { ifname?: string; addr_info?: { family?: string; local?: string; prefixlen?: number }[] };

const query = (argv: string[]): Probe => ({ ns: HOST, mech: 'exec', argv, expect: { $exit: 0 } });
const rows = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);

function removal(ctx: Ctx, id: string, kind: Step['kind'], args: string[], describe: string): Step {
  return { id, kind, scope: 'node', ns: HOST, mech: 'ip', argv: [ctx.facts.tools.ip, ...args], idempotent: false, undo: null, undoReason: 'uninstall', probe: null, describe };
}

function exec(id: string, kind: Step['kind'], argv: string[], describe: string): Step {
  return { id, kind, scope: 'node', ns: HOST, mech: 'exec', argv, idempotent: true, undo: null, undoReason: 'uninstall', probe: null, describe };
}

const byDst = <T extends { dst?: string }>(a: T, b: T) => String(a.dst).localeCompare(String(b.dst));

/** A route's destination inside the cluster subnet (a pod block): testcni's business. */
function inCluster(ctx: Ctx, dst: string | undefined): string | null {
  const c = dst ? parseCidr(dst.includes('/') ? dst : `${dst}/32`) : null;
  return c && containsCidr(parseCidr(ctx.config.subnet)!, c) ? (dst!.includes('/') ? dst! : `${dst}/32`) : null;
}

export const teardown: NodeTeardownPlanner<IpipConfig> = {
  tools: ['rm', 'rmdir'],
  observe(ctx) {
    const ip = ctx.facts.tools.ip;
    const table = String(ctx.config.modeConfig.bgp.kernel?.table ?? BGP_DEFAULTS.kernel.table);
    const bird = birdPaths(ctx.dirs);
    return {
      blackholes: query([ip, '-j', 'route', 'show', 'type', 'blackhole', 'proto', String(ctx.routeProtocol)]),
      learned: query([ip, '-j', 'route', 'show', 'table', table, 'proto', String(BIRD_ROUTE_PROTOCOL)]),
      tunnel: query([ip, '-j', '-d', 'addr', 'show', 'type', 'ipip']),
      birdRunning: query([ctx.facts.tools.birdc ?? 'birdc', '-s', bird.socket, 'show', 'status']),
      birdConfig: { ns: HOST, mech: 'file', path: bird.config, expect: { $exit: 0 } },
    };
  },
  plan(ctx, observed) {
    const steps: Step[] = [];
    const kept: string[] = [];
    const proto = String(ctx.routeProtocol);
    const bird = birdPaths(ctx.dirs);
    if (typeof observed.birdRunning === 'string') {
      steps.push(exec(`daemon.stop:host:bird`, 'daemon.stop', [ctx.facts.tools.birdc ?? 'birdc', '-s', bird.socket, 'down'],
        `stop the BIRD still answering on ${bird.socket} (its agent is gone); the routes it installed stay until the steps below`));
    }
    for (const r of rows<RouteJson>(observed.blackholes).sort(byDst)) {
      const dst = inCluster(ctx, r.dst);
      if (r.type !== 'blackhole' || !dst) continue;
      steps.push(removal(ctx, `route.blackhole.del:host:${dst}`, 'route.del', ['route', 'del', 'blackhole', dst, 'proto', proto], `delete blackhole ${dst} (proto ${proto}: this node's block)`));
    }
    const table = String(ctx.config.modeConfig.bgp.kernel?.table ?? BGP_DEFAULTS.kernel.table);
    for (const r of rows<RouteJson>(observed.learned).sort(byDst)) {
      const dst = inCluster(ctx, r.dst);
      if (!dst) {
        if (r.dst) kept.push(`${r.dst} (proto bird): outside ${ctx.config.subnet}, not testcni's, left alone`);
        continue;
      }
      steps.push(removal(ctx, `route.del:host:${dst}`, 'route.del', ['route', 'del', dst, 'table', table, 'proto', String(BIRD_ROUTE_PROTOCOL)],
        `delete route ${dst}${r.gateway ? ` via ${r.gateway}` : ''} (proto bird: BIRD left it in the kernel)`));
    }
    const dev = tunnelOf(ctx.config.modeConfig.bgp);
    const link = rows<LinkJson>(observed.tunnel).find((l) => l?.ifname === dev);
    if (link) {
      const cluster = parseCidr(ctx.config.subnet)!;
      for (const a of link.addr_info ?? []) {
        if (a.family !== 'inet' || !a.local || !contains(cluster, parseCidr(`${a.local}/32`)!.base)) continue;
        steps.push(removal(ctx, `addr.del:host:${dev}:${a.local}`, 'addr.del', ['addr', 'del', `${a.local}/${a.prefixlen ?? 32}`, 'dev', dev], `delete the tunnel address ${a.local} from ${dev}`));
      }
      if (dev === BGP_DEFAULTS.tunnelDevice) kept.push(`${dev}: the kernel's fallback IPIP device (it cannot be deleted), left in place`);
      else steps.push(removal(ctx, `link.del:host:${dev}`, 'link.del', ['link', 'del', 'dev', dev], `delete the IPIP tunnel ${dev}`));
    }
    if (observed.birdConfig !== null && observed.birdConfig !== undefined) {
      const dir = bird.config.slice(0, bird.config.lastIndexOf('/'));
      steps.push(exec(`fs.remove:host:${dir}`, 'fs.remove', [ctx.facts.tools.rm ?? 'rm', '-f', bird.config, bird.logFile, bird.pidFile, bird.socket],
        `remove BIRD's config (it may hold passwords), log, PID file and socket`));
      steps.push(exec(`fs.rmdir:host:${dir}`, 'fs.remove', [ctx.facts.tools.rmdir ?? 'rmdir', '--ignore-fail-on-non-empty', dir], `remove ${dir} if nothing else is in it`));
    }
    return { steps, kept };
  },
};
