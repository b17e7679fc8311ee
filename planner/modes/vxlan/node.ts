// vxlan's node state, reconciled by the agent: everything ADD ensures (bpffs, pins, device,
// maps, programs), checked in full here (the device's kind, port, MAC and MTU, its offload
// setting, the filters running this build's programs), plus what only the agent knows or owns:
// the route of the cluster subnet into the device (the node's own traffic to remote pods), the
// remote map filled from the registry (a departed node's prefixes removed, never the map
// wiped), pods' filters moved to a new build's program, old builds' pins removed, and endpoint
// entries whose host veth is gone.
import { HOST, type NodeFacts, type Probe, type Step } from '../../../model/plan.ts';
import type { NodeContext, NodePlanner, NodeSweep } from '../../mode.ts';
import type { NetworkConfig } from '../../../model/config.ts';
import { forwardingSteps } from '../../steps.ts';
import { ENDPOINTS, REMOTE, CONFIG, MAPS, PROGRAMS, parseDump, decodeEndpoint, decodeRemote, decodeConfig, type RemotePrefix } from '../../../bpf/maps.ts';
import type { VxlanConfig } from './config.ts';
import { deviceMtu } from './pod.ts';
import { teardown } from './teardown.ts';
import {
  nodeDataplane, nodeEnsureSteps, deviceSteps, deviceFilterSteps, configStep, remotePrefixes, remoteStep, remoteDeleteStep,
  endpointDeleteStep, filterStepOn, mapDir, mapPath, progDir, progPath, pinDirOf, blockGateway, BPF_FS_MAGIC, type NodeDataplane,
  showPinnedQueries, pinnedObjects, pinListingQuery, pinsListed, PROGRAM_PINS,
} from './dataplane.ts';

type Ctx = NodeContext<VxlanConfig>;
type Observed = Record<string, unknown>;

interface LinkJson {
  ifname: string;
  ifindex: number;
  address?: string;
  mtu?: number;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: { external?: boolean; port?: number } };
  addr_info?: { local?: string; prefixlen?: number }[];
}
interface TcAttachment { devname: string; ifindex: number; kind: string; name: string; id: number }

export function dataplaneFor(ctx: Pick<Ctx, 'config' | 'facts' | 'self'>): NodeDataplane {
  return nodeDataplane(ctx.config, ctx.facts, ctx.self.block, blockGateway(ctx.self.block), deviceMtu(ctx.config, ctx.facts.uplinkMtu));
}

const path = (p: string): Probe => ({ ns: HOST, mech: 'path', path: p, expect: { $some: { type: 'file' } } });
const exec = (argv: string[]): Probe => ({ ns: HOST, mech: 'exec', argv, expect: { $exit: 0 } });

/** The sysctls the datapath needs: forwarding in from the uplink and the device (pods' traffic
 *  to the outside, NATed flows the programs hand to the stack). */
function nodeSysctls(ctx: Ctx): Step[] {
  return forwardingSteps(ctx.facts, [ctx.facts.uplink, ctx.config.modeConfig.device]);
}

const isFile = (o: unknown) => Array.isArray(o) && (o[0] as { type?: string } | undefined)?.type === 'file';
const links = (o: Observed) => (Array.isArray(o.links) ? o.links : []) as LinkJson[];
const dump = (o: unknown) => {
  try {
    return o === null || o === undefined ? [] : parseDump(o);
  } catch {
    return [];
  }
};

/** The attachments `bpftool net` lists: tc programs per device. */
function attachments(o: Observed): TcAttachment[] {
  const net = (Array.isArray(o.net) ? o.net[0] : null) as { tc?: TcAttachment[] } | null;
  return net?.tc ?? [];
}
/** Program name as bpftool net prints it ("tcni_from_pod:[*fsobj]" when attached from a pin). */
const progName = (a: TcAttachment) => a.name.replace(/:.*$/, '');

/** Ids of this build's pinned programs, by name (none when they are not loaded yet). */
function currentPrograms(n: NodeDataplane, o: Observed): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of pinnedObjects(o, 'prog')) if (p.path === progPath(n, p.name)) out.set(p.name, p.id);
  return out;
}

function remoteWanted(ctx: Ctx): Map<string, { r: RemotePrefix; node: string }> {
  const want = new Map<string, { r: RemotePrefix; node: string }>();
  for (const node of [...ctx.nodes].sort((a, b) => a.name.localeCompare(b.name))) {
    if (node.name === ctx.self.name || !node.block || !node.underlayIp) continue;
    for (const r of remotePrefixes(node)) want.set(r.cidr, { r, node: node.name });
  }
  return want;
}

/** Endpoint entries whose host veth is gone (a DEL that never ran in full): their ifindex is no
 *  link of the node. The entries are read before the links, so a pod added in between (its veth
 *  exists before its entry) is never taken for one. */
export function staleEndpoints(n: Pick<NodeDataplane, 'tools' | 'pinDir'>, endpoints: unknown, linkList: { ifindex?: number }[]): Step[] {
  const indexes = new Set(linkList.map((l) => l.ifindex));
  return dump(endpoints).map(decodeEndpoint).filter((e) => !indexes.has(e.ifindex))
    .sort((a, b) => (a.ip < b.ip ? -1 : 1))
    .map((e) => endpointDeleteStep(n, e.ip, `its host veth, ifindex ${e.ifindex}, is gone`));
}

function plan(ctx: Ctx, o: Observed): Step[] {
  const n = dataplaneFor(ctx);
  const t = ctx.facts.tools;
  const steps: Step[] = [];
  // A device that does not exist (before the first run) reads empty: nothing to set yet.
  steps.push(...nodeSysctls(ctx).filter((s) => s.mech === 'sysctl' && typeof o[s.key] === 'string' && o[s.key] !== '' && String(o[s.key]).trim() !== s.value));

  const ensure = new Map(nodeEnsureSteps(n).map((s) => [s.id, s]));
  const pick = (prefix: string) => [...ensure.values()].filter((s) => s.id.startsWith(prefix));
  if (!(Array.isArray(o.bpffs) && (o.bpffs[0] as { fs?: string } | undefined)?.fs === BPF_FS_MAGIC)) steps.push(...pick('bpffs:'));
  if (!(Array.isArray(o.mapDir) && (o.mapDir[0] as { type?: string } | undefined)?.type === 'directory')) steps.push(...pick('dir:'));

  const dev = links(o).find((l) => l.ifname === n.device);
  const info = dev?.linkinfo;
  const wrongKind = dev !== undefined && !(info?.info_kind === 'vxlan' && info.info_data?.external === true && info.info_data.port === n.port);
  const fresh = dev === undefined || wrongKind;
  if (wrongKind) {
    steps.push({
      id: `link.del:host:${n.device}`, kind: 'link.del', scope: 'node', ns: HOST, mech: 'ip',
      argv: [t.ip, 'link', 'del', 'dev', n.device], idempotent: false, undo: null, undoReason: 'a removal',
      probe: { ns: HOST, mech: 'links', argv: [t.ip, '-j', 'link', 'show'], expect: { $none: { ifname: n.device } } },
      describe: `delete ${n.device}: not an external VXLAN device on port ${n.port} (re-created below)`,
    });
  }
  if (fresh) steps.push(...pick('link.vxlan:'));
  else {
    const set = (what: string, args: string[], now: string) => steps.push({
      id: `link.${what}:host:${n.device}`, kind: 'link.set', scope: 'node', ns: HOST, mech: 'ip',
      argv: [t.ip, 'link', 'set', 'dev', n.device, ...args], idempotent: true, undo: null, undoReason: 'node state shared by every pod',
      probe: { ns: HOST, mech: 'exec', argv: [t.ip, '-j', 'link', 'show', 'dev', n.device], expect: { $some: { [what === 'mac' ? 'address' : 'mtu']: what === 'mac' ? n.mac : n.mtu } } },
      describe: `${what} of ${n.device}: ${now} -> ${args[1]}`,
    });
    if (dev.address !== n.mac) set('mac', ['address', n.mac], String(dev.address));
    if (dev.mtu !== n.mtu) set('mtu', ['mtu', String(n.mtu)], String(dev.mtu));
  }
  const tx = (Array.isArray(o.ethtool) ? o.ethtool[0] : null) as { 'tx-checksumming'?: { active?: boolean } } | null;
  if (fresh || tx?.['tx-checksumming']?.active !== n.txChecksumOffload.on) steps.push(...pick('ethtool:'));
  const [addr, up] = deviceSteps(n);
  if (fresh || !dev.addr_info?.some((a) => a.local === n.gateway && a.prefixlen === 32)) steps.push(addr!);
  if (fresh || !dev.flags?.includes('UP')) steps.push(up!);
  const route = (Array.isArray(o.route) ? o.route : []) as { dst?: string; dev?: string; prefsrc?: string; protocol?: string | number }[];
  if (fresh || !route.some((r) => r.dev === n.device && r.prefsrc === n.gateway && String(r.protocol) === String(ctx.routeProtocol))) {
    steps.push({
      id: `route:host:${ctx.config.subnet}`, kind: 'route.add', scope: 'node', ns: HOST, mech: 'ip',
      argv: [t.ip, 'route', 'replace', ctx.config.subnet, 'dev', n.device, 'src', n.gateway, 'proto', String(ctx.routeProtocol)],
      idempotent: true, undo: null, undoReason: 'node state shared by every pod',
      probe: {
        ns: HOST, mech: 'exec', argv: [t.ip, '-j', 'route', 'show', 'exact', ctx.config.subnet],
        expect: { $some: { dev: n.device, prefsrc: n.gateway, protocol: String(ctx.routeProtocol) } },
      },
      describe: `route ${ctx.config.subnet} into ${n.device} from ${n.gateway} (the node's own traffic to remote pods)`,
    });
  }

  const missingMaps = MAPS.filter((m) => !isFile(o[`map:${m.name}`]));
  for (const m of missingMaps) steps.push(...pick(`bpf.map.create:host:${m.name}`));
  const loading = !isFile(o.progs);
  if (loading) steps.push(...pick('bpf.load:'), ...pick('fs.rename:'), ...pick('fs.remove:'));

  const cfg = dump(o.cfg).map(decodeConfig)[0];
  const cfgOk = !fresh && dev !== undefined && cfg !== undefined && cfg.vxlanIfindex === dev.ifindex && cfg.vni === n.vni && cfg.vxlanMac === n.mac && cfg.ttl === n.ttl;
  if (!cfgOk) steps.push(configStep(n));

  // The device's filters must run this build's programs; so must the pods'.
  const current = currentPrograms(n, o);
  const attached = attachments(o);
  const runs = (devname: string, dir: 'ingress' | 'egress', prog: string) =>
    attached.some((a) => a.devname === devname && a.kind === `clsact/${dir}` && progName(a) === prog && a.id === current.get(prog));
  const [clsact, ingress, egress] = deviceFilterSteps(n);
  const needIn = fresh || loading || !runs(n.device, 'ingress', PROGRAMS.fromVxlan);
  const needOut = fresh || loading || !runs(n.device, 'egress', PROGRAMS.toVxlan);
  if (needIn || needOut) steps.push(clsact!, ...(needIn ? [ingress!] : []), ...(needOut ? [egress!] : []));
  const stalePods = attached.filter((a) => a.devname !== n.device && a.kind === 'clsact/ingress' && progName(a) === PROGRAMS.fromPod
    && (loading || a.id !== current.get(PROGRAMS.fromPod)));
  for (const a of [...new Set(stalePods.map((x) => x.devname))].sort()) steps.push(filterStepOn(n, a, 'ingress', PROGRAMS.fromPod, 'node'));

  // Other builds' programs that no filter runs any more.
  if (!loading) {
    const inUse = new Set(attached.map((a) => a.id));
    const byDir = new Map<string, number[]>();
    for (const p of pinnedObjects(o, 'prog')) {
      const dir = p.path.replace(/\/[^/]+$/, '');
      if (dir !== progDir(n)) byDir.set(dir, [...(byDir.get(dir) ?? []), p.id]);
    }
    for (const [dir, ids] of [...byDir].sort()) {
      if (ids.some((id) => inUse.has(id))) continue;
      steps.push({
        id: `fs.remove:host:${dir}`, kind: 'fs.remove', scope: 'node', ns: HOST, mech: 'exec', argv: [t.rm!, '-rf', dir],
        idempotent: true, undo: null, undoReason: 'a removal',
        probe: { ns: HOST, mech: 'path', path: dir, expect: { $exit: 1 } },
        describe: `remove ${dir}: programs of an older build that nothing runs any more`,
      });
    }
  }

  // The remote map: what the registry says, nothing else.
  const want = remoteWanted(ctx);
  const have = new Map(dump(o.remote).map(decodeRemote).map((r) => [r.cidr, r]));
  for (const [cidr, { r, node }] of want) {
    const h = have.get(cidr);
    if (!h || h.nodeIp !== r.nodeIp || h.vtepMac !== r.vtepMac) steps.push(remoteStep(n, r, node));
  }
  for (const cidr of [...have.keys()].filter((c) => !want.has(c)).sort()) steps.push(remoteDeleteStep(n, cidr));

  if (Array.isArray(o.linksAfter)) steps.push(...staleEndpoints(n, o.endpoints, o.linksAfter as LinkJson[]));
  return steps;
}

export const nodePlanner: NodePlanner<VxlanConfig> = {
  observe(ctx) {
    const n = dataplaneFor(ctx);
    const t = ctx.facts.tools;
    const q: Record<string, Probe> = {
      links: exec([t.ip, '-j', '-d', 'addr', 'show']),
      bpffs: { ...path(n.bpffs), expect: { $some: { fs: BPF_FS_MAGIC } } },
      mapDir: { ...path(mapDir(n)), expect: { $some: { type: 'directory' } } },
      ...Object.fromEntries(MAPS.map((m) => [`map:${m.name}`, path(mapPath(n, m))])),
      progs: path(progPath(n, PROGRAMS.toVxlan)),
      route: exec([t.ip, '-j', 'route', 'show', 'exact', ctx.config.subnet]),
      net: exec([t.bpftool!, '-j', 'net', 'show']),
      pins: pinListingQuery(n),
    };
    for (const s of nodeSysctls(ctx)) if (s.mech === 'sysctl') q[s.key] = { ns: HOST, mech: 'sysctl', key: s.key, argv: [t.sysctl, '-n', '-e', s.key], expect: { $text: s.value } };
    return q;
  },
  observeMore(ctx, o) {
    const n = dataplaneFor(ctx);
    const t = ctx.facts.tools;
    const q: Record<string, Probe> = {};
    const dumpOf = (m: typeof ENDPOINTS) => exec([t.bpftool!, '-j', 'map', 'dump', 'pinned', mapPath(n, m)]);
    // The endpoint entries, then the links (see staleEndpoints): in this order.
    if (isFile(o[`map:${ENDPOINTS.name}`])) {
      q.endpoints = dumpOf(ENDPOINTS);
      q.linksAfter = exec([t.ip, '-j', 'link', 'show']);
    }
    if (isFile(o[`map:${REMOTE.name}`])) q.remote = dumpOf(REMOTE);
    if (isFile(o[`map:${CONFIG.name}`])) q.cfg = dumpOf(CONFIG);
    if (links(o).some((l) => l.ifname === n.device)) q.ethtool = exec([t.ethtool!, '--json', '-k', n.device]);
    Object.assign(q, showPinnedQueries(t, 'prog', pinsListed(n, o.pins, PROGRAM_PINS)));
    return q;
  },
  plan,
  routes(o) {
    return dump(o.remote).map(decodeRemote).filter((r) => !r.cidr.endsWith('/32')).map((r) => ({ dst: r.cidr, via: r.nodeIp }))
      .sort((a, b) => (a.dst < b.dst ? -1 : 1));
  },
  teardown,
};

/** CNI GC: endpoint entries whose host veth is gone. Needs no registry: it runs with or without
 *  an agent. */
export const sweep: NodeSweep<VxlanConfig> = {
  observe(config, facts) {
    const n = sweepDataplane(config, facts);
    return {
      endpoints: exec([facts.tools.bpftool!, '-j', 'map', 'dump', 'pinned', mapPath(n, ENDPOINTS)]),
      links: exec([facts.tools.ip, '-j', 'link', 'show']),
    };
  },
  plan(config, facts, o) {
    return staleEndpoints(sweepDataplane(config, facts), o.endpoints, links(o));
  },
};

function sweepDataplane(config: NetworkConfig<string, VxlanConfig>, facts: NodeFacts): Pick<NodeDataplane, 'tools' | 'pinDir'> {
  return { tools: facts.tools, pinDir: pinDirOf(config, facts) };
}
