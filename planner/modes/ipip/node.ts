// ipip's node state. The agent owns (route protocol ctx.routeProtocol, 151 by default): the IPIP
// tunnel device when pods' traffic is encapsulated (its MTU, the block's first address on it, so
// traffic the node itself sends to remote pods comes back through the tunnel and passes strict
// reverse-path filters), the node's block as a blackhole route (pods have /32 routes; an address
// of the block no pod holds is dropped here instead of looping via the default route), and the
// forwarding flags. BIRD owns the routes to the other nodes' blocks (route protocol 12, learned
// over BGP); the agent only reads them, to report them and to tell when the node has them all.
import { HOST, type Probe, type Step } from '../../../model/plan.ts';
import type { DaemonSpec } from '../../../model/daemon.ts';
import type { NodeContext, NodePlanner } from '../../mode.ts';
import { desiredRoutes, parseRoutes } from '../../node-routes.ts';
import { forwardingSteps, linkExistsProbe, shownDst } from '../../steps.ts';
import { parseCidr, formatIp, formatCidr, contains } from '../../../lib/ipv4.ts';
import { birdView, birdNodeOf, BGP_DEFAULTS, BIRD_ROUTE_PROTOCOL, type BgpSettings } from '../../bird/view.ts';
import { birdDaemon } from '../../bird/daemon.ts';
import { bgpSessionsOf } from '../../bird/protocols.ts';
import { checkPassword } from '../../bird/view.ts';
import { encapsulates, tunnelOf, IPIP_OVERHEAD, asConfigError, type BgpConfig, type IpipConfig } from './config.ts';
import { teardown } from './teardown.ts';

type Ctx = NodeContext<IpipConfig>;

const bgpOf = (ctx: Ctx): BgpConfig => ctx.config.modeConfig.bgp;
const tableOf = (bgp: BgpConfig): number => bgp.kernel?.table ?? BGP_DEFAULTS.kernel.table;

const MESH_PASSWORD = 'bgp.meshPasswordFile';
const peerPasswordField = (i: number) => `bgp.externalPeers.${i}.passwordFile`;

/** Query names (NodePlanner.observe). */
const Q = { learned: 'learned', blackholes: 'blackholes', tunnel: 'tunnel', uplink: 'uplink' } as const;

const query = (argv: string[]): Probe => ({ ns: HOST, mech: 'exec', argv, expect: { $exit: 0 } });

function nodeSysctls(ctx: Ctx): Step[] {
  const bgp = bgpOf(ctx);
  return forwardingSteps(ctx.facts, [ctx.facts.uplink, ...(encapsulates(bgp) ? [tunnelOf(bgp)] : [])]);
}

interface TunnelLink {
  ifname: string;
  mtu?: number;
  flags?: string[];
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

function observedTunnel(ctx: Ctx, observed: Record<string, unknown>): TunnelLink | null {
  const links = Array.isArray(observed[Q.tunnel]) ? (observed[Q.tunnel] as TunnelLink[]) : [];
  return links.find((l) => l?.ifname === tunnelOf(bgpOf(ctx))) ?? null;
}

function uplinkMtu(observed: Record<string, unknown>): number {
  const links = Array.isArray(observed[Q.uplink]) ? (observed[Q.uplink] as { mtu?: number }[]) : [];
  return links[0]?.mtu ?? 1500;
}

/** The tunnel's own address: the block's first, which IPAM never hands out (the gateway's). */
export function tunnelAddress(block: string): string | null {
  const c = parseCidr(block, true);
  return c ? formatIp(c.base + 1) : null;
}

function nodeStep(ctx: Ctx, s: Omit<Step, 'scope' | 'ns' | 'mech' | 'undo' | 'argv'> & { args: string[]; undoReason?: string }): Step {
  const { args, ...rest } = s;
  return { scope: 'node', ns: HOST, mech: 'ip', argv: [ctx.facts.tools.ip, ...args], undo: null, undoReason: 'node state follows the registry, not pods', ...rest } as Step;
}

function tunnelSteps(ctx: Ctx, observed: Record<string, unknown>): Step[] {
  const bgp = bgpOf(ctx);
  if (!encapsulates(bgp)) return [];
  const dev = tunnelOf(bgp);
  const ip = ctx.facts.tools.ip;
  const have = observedTunnel(ctx, observed);
  const mtu = uplinkMtu(observed) - IPIP_OVERHEAD;
  const addr = tunnelAddress(ctx.self.block);
  const steps: Step[] = [];
  if (!have) {
    // The ipip module gives every netns the fallback device tunl0 (any local, any remote): that is
    // the tunnel. A device of another name needs a local address not to collide with it.
    const local = dev === BGP_DEFAULTS.tunnelDevice ? [] : ['local', ctx.self.underlayIp];
    steps.push(nodeStep(ctx, {
      id: `link.ipip:host:${dev}`, kind: 'link.add', args: ['link', 'add', 'name', dev, 'type', 'ipip', ...local],
      idempotent: false, probe: linkExistsProbe(ctx.facts, HOST, dev), describe: `create the IPIP tunnel ${dev}`,
    }));
  }
  if (!have || have.mtu !== mtu || !(have.flags ?? []).includes('UP')) {
    steps.push(nodeStep(ctx, {
      id: `link.set:host:${dev}`, kind: 'link.set', args: ['link', 'set', 'dev', dev, 'mtu', String(mtu), 'up'], idempotent: true,
      probe: { ns: HOST, mech: 'exec', argv: [ip, '-j', 'link', 'show', 'dev', dev], expect: { $some: { mtu, flags: { $some: 'UP' } } } },
      describe: `${dev} up with mtu ${mtu} (the uplink's less ${IPIP_OVERHEAD})`,
    }));
  }
  const addrs = (have?.addr_info ?? []).filter((a) => a.family === 'inet' && typeof a.local === 'string');
  if (addr && !addrs.some((a) => a.local === addr && a.prefixlen === 32)) {
    steps.push(nodeStep(ctx, {
      id: `addr:host:${dev}`, kind: 'addr.add', args: ['addr', 'replace', `${addr}/32`, 'dev', dev], idempotent: true,
      probe: { ns: HOST, mech: 'exec', argv: [ip, '-j', 'addr', 'show', 'dev', dev], expect: { $some: { addr_info: { $some: { local: addr, prefixlen: 32 } } } } },
      describe: `tunnel address ${addr}/32 on ${dev} (this node's traffic to remote pods comes back through the tunnel)`,
    }));
  }
  // A tunnel address of an earlier block (this node's block changed): ours when it is in the
  // cluster subnet.
  const cluster = parseCidr(ctx.config.subnet)!;
  for (const a of addrs) {
    const n = parseCidr(`${a.local}/32`)!.base;
    if (a.local === addr || !contains(cluster, n)) continue;
    steps.push(nodeStep(ctx, {
      id: `addr.del:host:${dev}:${a.local}`, kind: 'addr.del', args: ['addr', 'del', `${a.local}/${a.prefixlen ?? 32}`, 'dev', dev], idempotent: false,
      probe: { ns: HOST, mech: 'exec', argv: [ip, '-j', 'addr', 'show', 'dev', dev], expect: { $none: { addr_info: { $some: { local: a.local! } } } } },
      describe: `remove the stale tunnel address ${a.local} from ${dev}`,
    }));
  }
  return steps;
}

function blackholeSteps(ctx: Ctx, observed: Record<string, unknown>): Step[] {
  const proto = String(ctx.routeProtocol);
  const rows = Array.isArray(observed[Q.blackholes]) ? (observed[Q.blackholes] as { type?: string; dst?: string }[]) : [];
  const have = rows.filter((r) => r?.type === 'blackhole' && typeof r.dst === 'string').map((r) => (r.dst!.includes('/') ? r.dst! : `${r.dst}/32`));
  const block = parseCidr(ctx.self.block, true);
  const want = block ? [formatCidr(block)] : [];
  const probe = (dst: string, present: boolean): Probe => ({
    ns: HOST, mech: 'exec', argv: [ctx.facts.tools.ip, '-j', 'route', 'show', 'type', 'blackhole', 'proto', proto],
    expect: present ? { $some: { dst: shownDst(dst) } } : { $none: { dst: shownDst(dst) } },
  });
  return [
    ...want.filter((b) => !have.includes(b)).map((b) => nodeStep(ctx, {
      id: `route.blackhole:host:${b}`, kind: 'route.add', args: ['route', 'add', 'blackhole', b, 'proto', proto], idempotent: false,
      probe: probe(b, true), describe: `blackhole ${b}, this node's block (its pods have /32 routes; BIRD announces it)`,
    })),
    ...have.filter((b) => !want.includes(b)).sort().map((b) => nodeStep(ctx, {
      id: `route.blackhole.del:host:${b}`, kind: 'route.del', args: ['route', 'del', 'blackhole', b, 'proto', proto], idempotent: false,
      probe: probe(b, false), describe: `remove the blackhole of ${b} (no longer this node's block)`,
    })),
  ];
}

/** The settings BIRD's view takes: the config's, with the passwords the agent read. */
function settingsOf(bgp: BgpConfig, secrets: Record<string, string>): BgpSettings {
  const { meshPasswordFile, externalPeers, ...rest } = bgp;
  const secret = (field: string) => {
    const text = secrets[field];
    if (text === undefined) throw new Error(`${field}: not read (the agent reads password files)`);
    return text;
  };
  return {
    ...rest,
    ...(meshPasswordFile ? { meshPassword: secret(MESH_PASSWORD) } : {}),
    externalPeers: externalPeers.map((p, i) => ({ address: p.address, asn: p.asn, ...(p.passwordFile ? { password: secret(peerPasswordField(i)) } : {}) })),
  };
}

/** Where this node's BIRD keeps its files. */
export function birdPaths(dirs: { run: string; state: string }) {
  return {
    config: `${dirs.state}/bird/bird.conf`,
    logFile: `${dirs.state}/bird/bird.log`,
    socket: `${dirs.run}/bird.ctl`,
    pidFile: `${dirs.run}/bird.pid`,
  };
}

function learned(observed: Record<string, unknown>) {
  return parseRoutes(observed[Q.learned]);
}

export const nodePlanner: NodePlanner<IpipConfig> = {
  tools: () => ['bird', 'birdc'],
  observe(ctx) {
    const bgp = bgpOf(ctx);
    const ip = ctx.facts.tools.ip;
    const queries: Record<string, Probe> = {
      [Q.learned]: query([ip, '-j', 'route', 'show', 'table', String(tableOf(bgp)), 'proto', String(BIRD_ROUTE_PROTOCOL)]),
      [Q.blackholes]: query([ip, '-j', 'route', 'show', 'type', 'blackhole', 'proto', String(ctx.routeProtocol)]),
    };
    if (encapsulates(bgp)) {
      queries[Q.tunnel] = query([ip, '-j', '-d', 'addr', 'show', 'type', 'ipip']);
      if (ctx.facts.uplink) queries[Q.uplink] = query([ip, '-j', 'link', 'show', 'dev', ctx.facts.uplink]);
    }
    for (const s of nodeSysctls(ctx)) if (s.mech === 'sysctl') queries[s.key] = { ns: HOST, mech: 'sysctl', key: s.key, argv: [ctx.facts.tools.sysctl, '-n', '-e', s.key], expect: { $text: s.value } };
    return queries;
  },
  plan(ctx, observed) {
    // A device that does not exist yet (the tunnel before its creation) reads empty: nothing to set.
    const fix = nodeSysctls(ctx).filter((s) => s.mech === 'sysctl' && typeof observed[s.key] === 'string' && observed[s.key] !== '' && String(observed[s.key]).trim() !== s.value);
    return [...fix, ...tunnelSteps(ctx, observed), ...blackholeSteps(ctx, observed)];
  },
  routes: (observed) => learned(observed),
  waitingFor(ctx, observed) {
    const have = new Set(learned(observed).map((r) => r.dst));
    const missing = desiredRoutes(ctx.self.name, ctx.nodes).filter((r) => !have.has(r.dst)).map((r) => r.dst);
    return missing.length === 0 ? null : `routes from BGP for ${missing.join(', ')}`;
  },
  secretFiles(config) {
    const bgp = config.modeConfig.bgp;
    const files: Record<string, string> = {};
    if (bgp.meshPasswordFile) files[MESH_PASSWORD] = bgp.meshPasswordFile;
    bgp.externalPeers.forEach((p, i) => {
      if (p.passwordFile) files[peerPasswordField(i)] = p.passwordFile;
    });
    return files;
  },
  checkSecret(field, text) {
    try {
      checkPassword(field, text);
    } catch (e) {
      throw asConfigError(e);
    }
  },
  daemons(ctx, observed): DaemonSpec[] {
    if (!ctx.underlaySubnet) throw new Error('the underlay subnet of this node is unknown (give the agent --underlay-subnet)');
    const view = birdView({
      self: { name: ctx.self.name, underlayIp: ctx.self.underlayIp, underlaySubnet: ctx.underlaySubnet, blocks: ctx.self.block ? [ctx.self.block] : [] },
      nodes: ctx.nodes.map(birdNodeOf),
      bgp: settingsOf(bgpOf(ctx), ctx.secrets),
    });
    const tools = { bird: ctx.facts.tools.bird ?? 'bird', birdc: ctx.facts.tools.birdc ?? 'birdc' };
    // Routes BIRD left in the kernel (persist) mean an earlier BIRD ran: recover them gracefully.
    return [birdDaemon(birdPaths(ctx.dirs), tools, view, learned(observed).length > 0)];
  },
  sessions: (daemon, output) => (daemon === 'bird' ? bgpSessionsOf(output) : []),
  teardown,
};
