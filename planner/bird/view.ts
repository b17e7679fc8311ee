// BIRD's configuration as data (pure): from this node, the node registry and the BGP settings
// to a fully computed view model. Every decision is made here (peers and their order, names,
// session kind, filters per ipipMode); templates/bird.conf.hbs only substitutes and repeats.
//
// Route ownership on a node (one owner per class of kernel route):
//   - other nodes' pod blocks: BIRD. Its kernel protocol installs them with route protocol 12
//     ("bird"; BIRD 2 always uses RTPROT_BIRD and cannot set another), the configured metric
//     and table: through the tunnel device (`via <node> dev tunl0 onlink`) or plainly routed,
//     as ipipMode says.
//   - this node's block(s) as blackhole routes, the tunnel device and each pod's /32 route:
//     testcni (the node plan and the plugin). BIRD announces the block from its own static
//     protocol "blocks" but never installs it (the kernel export takes BGP routes only).
//   - everything else (underlay, default route): the host. BIRD learns those alien routes only
//     to resolve next hops of sessions outside the underlay subnet, never re-exports them.
import { CniError, Code } from '../../model/errors.ts';
import { parseCidr, parseIp, formatCidr, formatIp, contains, type Cidr } from '../../lib/ipv4.ts';
import type { NodeRecord } from '../../model/node.ts';

export type IpipMode = 'always' | 'crossSubnet' | 'never';
export const IPIP_MODES: readonly IpipMode[] = ['always', 'crossSubnet', 'never'];

/** A node as the registry lists it. */
export interface BirdNode {
  name: string;
  underlayIp: string;
  blocks: string[];
}

export interface BirdSelf extends BirdNode {
  /** the underlay network this node's address is on (CIDR): peers inside it are one hop away */
  underlaySubnet: string;
}

export interface ExternalPeer {
  address: string;
  asn: number;
  /** the password text (the caller reads the password file); never logged */
  password?: string;
}

export interface BgpTimers {
  holdTime: number;
  keepaliveTime: number;
  connectDelayTime: number;
  connectRetryTime: number;
  /** error wait time: [minimum, maximum] seconds */
  errorWaitTime: [number, number];
}

export interface KernelSettings {
  /** kernel routing table BIRD installs into */
  table: number;
  /** route metric (priority) of BIRD's routes: keeps them apart from routes of other owners */
  metric: number;
  /** seconds between scans of the kernel table */
  scanTime: number;
}

export interface GracefulRestart {
  enabled: boolean;
  /** seconds peers keep this node's routes while its BIRD restarts (1..4095) */
  restartTime: number;
  /** seconds a BIRD started in recovery (-R) waits for its sessions before it updates and prunes kernel routes */
  waitTime: number;
}

export interface BgpSettings {
  asn?: number;
  ipipMode: IpipMode;
  externalPeers?: ExternalPeer[];
  /** this node is a route reflector of this cluster id (dotted quad or number) */
  routeReflector?: { clusterId: string | number };
  /** underlay addresses of the route reflectors; when given, non-reflector nodes peer only with them */
  reflectors?: string[];
  /** password of the sessions between nodes (mesh and reflectors) */
  meshPassword?: string;
  timers?: Partial<BgpTimers>;
  gracefulRestart?: Partial<GracefulRestart>;
  tunnelDevice?: string;
  kernel?: Partial<KernelSettings>;
}

export interface BirdInput {
  self: BirdSelf;
  /** the registry's nodes; this node, malformed records and duplicate addresses are skipped */
  nodes: BirdNode[];
  bgp: BgpSettings;
}

export const BGP_DEFAULTS = {
  asn: 64512,
  tunnelDevice: 'tunl0',
  timers: { holdTime: 90, keepaliveTime: 30, connectDelayTime: 2, connectRetryTime: 5, errorWaitTime: [5, 30] } as BgpTimers,
  gracefulRestart: { enabled: true, restartTime: 120, waitTime: 30 } as GracefulRestart,
  kernel: { table: 254, metric: 32, scanTime: 10 } as KernelSettings,
  deviceScanTime: 10,
};

/** BIRD 2 installs every kernel route with this protocol number (RTPROT_BIRD); not configurable. */
export const BIRD_ROUTE_PROTOCOL = 12;
/** The name of BIRD's kernel protocol in the generated config (`birdc reload out` takes it). */
export const KERNEL_PROTOCOL = 'kernel4';

export type PeerKind = 'reflector' | 'node' | 'external';

export interface PeerView {
  /** BIRD protocol name, derived from the role and address: node_198_18_0_12 */
  name: string;
  kind: PeerKind;
  /** the BIRD template it derives from */
  template: 'cluster_peer' | 'external_peer';
  description: string;
  address: string;
  asn: number;
  /** protocol lines after `neighbor` (session kind, reflector role, password) */
  options: string[];
  /** channel lines (how next hops are resolved) */
  channel: string[];
}

export interface FilterView {
  name: string;
  comment: string;
  /** local variable declarations */
  locals: string[];
  statements: string[];
}

export interface BirdView {
  node: string;
  routerId: string;
  localAddress: string;
  asn: number;
  ipipMode: IpipMode;
  underlaySubnet: string;
  tunnelDevice: string;
  routeProtocol: number;
  /** how learned routes reach the kernel, for the header comment */
  kernelRoutes: string;
  gracefulRestartWait: number;
  deviceScanTime: number;
  directInterfaces: string;
  /** this node's blocks, announced from the static protocol "blocks" */
  ownBlocks: string[];
  filters: FilterView[];
  kernel: { name: string; table: number; metric: number; scanTime: number; options: string[] };
  internal: { timers: string[]; options: string[]; importFilter: string; exportFilter: string };
  external: { timers: string[]; options: string[]; exportFilter: string };
  peers: PeerView[];
  /** passwords in the rendered text: the file is written 0600 and these are redacted from logs */
  secrets: string[];
}

function invalid(field: string, why: string): never {
  throw new CniError(Code.InvalidConfig, `invalid bgp setting: ${field}`, `${field}: ${why}`);
}

const U32 = 4294967295;

function integer(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) invalid(field, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

function address(field: string, v: unknown): number {
  const ip = typeof v === 'string' ? parseIp(v) : null;
  if (ip === null) invalid(field, `not an IPv4 address: ${JSON.stringify(v)}`);
  if (ip === 0 || ip >= 0xe0000000 || ip >>> 24 === 127) invalid(field, `not a unicast address: ${v}`);
  return ip;
}

function network(field: string, v: unknown): Cidr {
  const c = typeof v === 'string' ? parseCidr(v, true) : null;
  if (c === null) invalid(field, `not an IPv4 network in CIDR form (no host bits): ${JSON.stringify(v)}`);
  return c;
}

/** BIRD strings have no escapes: no quote, no newline; TCP MD5 keys are at most 80 bytes. */
function password(field: string, v: unknown): string {
  if (typeof v !== 'string' || v.length < 1 || v.length > 80 || !/^[\x20-\x21\x23-\x7e]+$/.test(v)) {
    // Never echo the value: it is a secret.
    invalid(field, 'must be 1 to 80 printable ASCII characters without a double quote');
  }
  return v;
}

function clusterId(field: string, v: unknown): string {
  if (typeof v === 'number') return String(integer(field, v, 1, U32));
  if (typeof v === 'string' && /^\d+$/.test(v)) return String(integer(field, Number(v), 1, U32));
  if (typeof v === 'string' && parseIp(v) !== null && parseIp(v) !== 0) return v;
  return invalid(field, `must be a dotted quad or a number from 1 to ${U32}, got ${JSON.stringify(v)}`);
}

function timers(t: Partial<BgpTimers> = {}): BgpTimers {
  const d = BGP_DEFAULTS.timers;
  const hold = t.holdTime ?? d.holdTime;
  if (hold !== 0) integer('bgp.timers.holdTime', hold, 3, 65535);
  const keepalive = integer('bgp.timers.keepaliveTime', t.keepaliveTime ?? d.keepaliveTime, 1, 65535);
  if (hold !== 0 && keepalive >= hold) invalid('bgp.timers.keepaliveTime', `must be below holdTime (${hold})`);
  const wait = t.errorWaitTime ?? d.errorWaitTime;
  if (!Array.isArray(wait) || wait.length !== 2) invalid('bgp.timers.errorWaitTime', 'must be [minimum, maximum] seconds');
  const [lo, hi] = [integer('bgp.timers.errorWaitTime[0]', wait[0], 1, 65535), integer('bgp.timers.errorWaitTime[1]', wait[1], 1, 65535)];
  if (hi < lo) invalid('bgp.timers.errorWaitTime', 'maximum below minimum');
  return {
    holdTime: hold,
    keepaliveTime: keepalive,
    connectDelayTime: integer('bgp.timers.connectDelayTime', t.connectDelayTime ?? d.connectDelayTime, 1, 65535),
    connectRetryTime: integer('bgp.timers.connectRetryTime', t.connectRetryTime ?? d.connectRetryTime, 1, 65535),
    errorWaitTime: [lo, hi],
  };
}

function timerLines(t: BgpTimers): string[] {
  return [
    `hold time ${t.holdTime};`,
    `keepalive time ${t.keepaliveTime};`,
    `connect delay time ${t.connectDelayTime};`,
    `connect retry time ${t.connectRetryTime};`,
    `error wait time ${t.errorWaitTime[0]}, ${t.errorWaitTime[1]};`,
  ];
}

const byNumber = (a: { ip: number }, b: { ip: number }) => a.ip - b.ip;

/** A BIRD protocol name for a peer: its role and its address, e.g. node_198_18_0_12. */
export function peerName(kind: PeerKind, addr: string): string {
  const prefix = kind === 'reflector' ? 'rr' : kind === 'node' ? 'node' : 'peer';
  return `${prefix}_${addr.replace(/\./g, '_')}`;
}

/** Registry names are DNS-like; anything else is replaced so it can sit in a BIRD string. */
const printable = (s: string) => s.replace(/[^A-Za-z0-9._:-]/g, '_').slice(0, 63);

/** Registry records that can become peers: well-formed, not this node, one per address. */
function usableNodes(self: BirdSelf, selfIp: number, nodes: BirdNode[]): { node: BirdNode; ip: number; blocks: string[] }[] {
  const seen = new Set<number>([selfIp]);
  const out: { node: BirdNode; ip: number; blocks: string[] }[] = [];
  const sorted = [...nodes].filter((n) => n && typeof n.name === 'string').sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const n of sorted) {
    if (n.name === self.name) continue;
    const ip = typeof n.underlayIp === 'string' ? parseIp(n.underlayIp) : null;
    if (ip === null || ip === 0 || seen.has(ip)) continue;
    seen.add(ip);
    const blocks = (Array.isArray(n.blocks) ? n.blocks : []).filter((b) => typeof b === 'string' && parseCidr(b, true) !== null && formatCidr(parseCidr(b, true)!) === b);
    out.push({ node: n, ip, blocks });
  }
  return out.sort(byNumber);
}

/** Sorted, de-duplicated prefixes, as BIRD prints a set. */
function prefixSet(blocks: string[], suffix = ''): string {
  const uniq = [...new Set(blocks)].map((b) => ({ b, c: parseCidr(b)! })).sort((x, y) => x.c.base - y.c.base || x.c.prefix - y.c.prefix);
  return `[ ${uniq.map((x) => x.b + suffix).join(', ')} ]`;
}

function kernelExport(mode: IpipMode, tunnel: string, subnet: string): FilterView {
  const head = ['if source != RTS_BGP then reject;'];
  const viaTunnel = [
    '# gw last: setting ifname clears it; onlink lets the remote underlay address be the next hop on the tunnel',
    'nh = bgp_next_hop;',
    `ifname = "${tunnel}";`,
    'onlink = true;',
    'gw = nh;',
    'accept;',
  ];
  if (mode === 'never') return { name: 'kernel_export', comment: 'routes learned over BGP, plainly routed via the next hop', locals: [], statements: [...head, 'accept;'] };
  if (mode === 'always') return { name: 'kernel_export', comment: `routes learned over BGP, through ${tunnel} to the announcing node's underlay address`, locals: ['ip nh;'], statements: [...head, ...viaTunnel] };
  return {
    name: 'kernel_export',
    comment: `routes learned over BGP: plain next hop inside ${subnet}, through ${tunnel} beyond it`,
    locals: ['ip nh;'],
    statements: [...head, `if bgp_next_hop ~ ${subnet} then accept;`, ...viaTunnel],
  };
}

const KERNEL_ROUTES: Record<IpipMode, (tunnel: string, subnet: string) => string> = {
  always: (t) => `through ${t}, onlink via the node's underlay address`,
  crossSubnet: (t, s) => `plainly routed within ${s}, through ${t} (onlink) beyond it`,
  never: () => 'plainly routed via the next hop',
};

/** The view model of this node's bird.conf. Throws code 7 naming the field on a bad setting. */
export function birdView(input: BirdInput): BirdView {
  const { self, bgp } = input;
  if (!IPIP_MODES.includes(bgp.ipipMode)) invalid('bgp.ipipMode', `must be one of ${IPIP_MODES.join(', ')}, got ${JSON.stringify(bgp.ipipMode)}`);
  const asn = integer('bgp.asn', bgp.asn ?? BGP_DEFAULTS.asn, 1, U32);
  const selfIp = address('self.underlayIp', self.underlayIp);
  const subnet = network('self.underlaySubnet', self.underlaySubnet);
  if (!contains(subnet, selfIp)) invalid('self.underlaySubnet', `${self.underlaySubnet} does not contain ${self.underlayIp}`);
  const subnetText = formatCidr(subnet);
  const ownBlocks = (self.blocks ?? []).map((b, i) => formatCidr(network(`self.blocks[${i}]`, b)));
  const tunnel = bgp.tunnelDevice ?? BGP_DEFAULTS.tunnelDevice;
  if (typeof tunnel !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(tunnel) || tunnel === '.' || tunnel === '..') invalid('bgp.tunnelDevice', `not an interface name: ${JSON.stringify(tunnel)}`);
  const t = timers(bgp.timers);
  const gr = { ...BGP_DEFAULTS.gracefulRestart, ...bgp.gracefulRestart };
  if (typeof gr.enabled !== 'boolean') invalid('bgp.gracefulRestart.enabled', 'must be true or false');
  integer('bgp.gracefulRestart.restartTime', gr.restartTime, 1, 4095);
  integer('bgp.gracefulRestart.waitTime', gr.waitTime, 1, 65535);
  const k = { ...BGP_DEFAULTS.kernel, ...bgp.kernel };
  integer('bgp.kernel.table', k.table, 1, U32);
  integer('bgp.kernel.metric', k.metric, 0, U32);
  integer('bgp.kernel.scanTime', k.scanTime, 1, 65535);
  const meshPassword = bgp.meshPassword === undefined ? undefined : password('bgp.meshPassword', bgp.meshPassword);
  const rrCluster = bgp.routeReflector === undefined ? null : clusterId('bgp.routeReflector.clusterId', bgp.routeReflector?.clusterId);

  const reflectorIps = new Set<number>();
  (bgp.reflectors ?? []).forEach((r, i) => {
    const ip = address(`bgp.reflectors[${i}]`, r);
    if (reflectorIps.has(ip)) invalid(`bgp.reflectors[${i}]`, `${r} is listed twice`);
    reflectorIps.add(ip);
  });

  const others = usableNodes(self, selfIp, input.nodes ?? []);
  const oneHop = (ip: number) => contains(subnet, ip);
  const reach = (ip: number, internal: boolean) => {
    if (oneHop(ip)) return { options: ['direct;'], channel: internal ? ['ipv4 { gateway direct; };'] : [] };
    // Beyond the subnet: a multihop session; the next hop is resolved through the routes BIRD
    // learns from the kernel (the underlay's default route).
    return { options: ['multihop;'], channel: internal ? ['ipv4 { gateway recursive; };'] : [] };
  };
  const withPassword = (pw: string | undefined) => (pw === undefined ? [] : [`password "${pw}";`]);

  const peers: (PeerView & { ip: number; order: number })[] = [];
  const internalPeer = (kind: 'reflector' | 'node', ip: number, addr: string, description: string, client: boolean) => {
    const r = reach(ip, true);
    peers.push({
      ip,
      order: kind === 'reflector' ? 0 : 1,
      name: peerName(kind, addr),
      kind,
      template: 'cluster_peer',
      description,
      address: addr,
      asn,
      options: [...r.options, ...(client && rrCluster ? ['rr client;', `rr cluster id ${rrCluster};`] : []), ...withPassword(meshPassword)],
      channel: r.channel,
    });
  };
  const known = (ip: number) => others.find((o) => o.ip === ip)?.node;
  const reflector = (ip: number) => internalPeer('reflector', ip, formatIp(ip), known(ip) ? `reflector ${printable(known(ip)!.name)}` : 'reflector', false);

  if (rrCluster !== null) {
    // A reflector: a session with every node; reflectors are plain iBGP neighbours, the rest clients.
    for (const o of others) {
      const isReflector = reflectorIps.has(o.ip);
      internalPeer(isReflector ? 'reflector' : 'node', o.ip, o.node.underlayIp, `${isReflector ? 'reflector' : 'node'} ${printable(o.node.name)}`, !isReflector);
    }
    for (const ip of reflectorIps) if (ip !== selfIp && !known(ip)) reflector(ip);
  } else if (reflectorIps.size > 0) {
    for (const ip of reflectorIps) if (ip !== selfIp) reflector(ip);
  } else {
    for (const o of others) internalPeer('node', o.ip, o.node.underlayIp, `node ${printable(o.node.name)}`, false);
  }

  const internalIps = new Set(peers.map((p) => p.ip));
  const secrets = meshPassword === undefined || peers.length === 0 ? [] : [meshPassword];
  (bgp.externalPeers ?? []).forEach((p, i) => {
    const f = `bgp.externalPeers[${i}]`;
    const ip = address(`${f}.address`, p?.address);
    if (ip === selfIp) invalid(`${f}.address`, `${p.address} is this node`);
    if (internalIps.has(ip)) invalid(`${f}.address`, `${p.address} is already a peer of this node`);
    const peerAsn = integer(`${f}.asn`, p.asn, 1, U32);
    const pw = p.password === undefined ? undefined : password(`${f}.password`, p.password);
    if (pw !== undefined && !secrets.includes(pw)) secrets.push(pw);
    internalIps.add(ip);
    const r = reach(ip, false);
    peers.push({
      ip,
      order: 2,
      name: peerName('external', p.address),
      kind: 'external',
      template: 'external_peer',
      description: `external peer AS${peerAsn}`,
      address: p.address,
      asn: peerAsn,
      options: [...r.options, ...withPassword(pw)],
      channel: [],
    });
  });
  peers.sort((a, b) => a.order - b.order || a.ip - b.ip);

  const otherBlocks = others.flatMap((o) => o.blocks).filter((b) => !ownBlocks.includes(b));
  const allBlocks = [...ownBlocks, ...otherBlocks];
  const filters: FilterView[] = [
    {
      name: 'kernel_import',
      comment: 'routes of other owners, learned only to resolve next hops: never pod routes',
      locals: [],
      statements: [...(allBlocks.length ? [`if net ~ ${prefixSet(allBlocks, '+')} then reject;`] : []), 'if dest = RTD_UNICAST then accept;', 'reject;'],
    },
    kernelExport(bgp.ipipMode, tunnel, subnetText),
    {
      name: 'bgp_import',
      comment: "other nodes' blocks only",
      locals: [],
      statements: [...(otherBlocks.length ? [`if net ~ ${prefixSet(otherBlocks)} then accept;`] : []), 'reject;'],
    },
    {
      name: 'bgp_export_internal',
      comment: rrCluster !== null ? "this node's blocks, and other nodes' blocks reflected to clients" : "this node's blocks (BIRD never passes routes between two non-client iBGP peers)",
      locals: [],
      statements: ['if proto = "blocks" then accept;', ...(otherBlocks.length ? [`if source = RTS_BGP && net ~ ${prefixSet(otherBlocks)} then accept;`] : []), 'reject;'],
    },
    { name: 'bgp_export_external', comment: "this node's blocks only", locals: [], statements: ['if proto = "blocks" then accept;', 'reject;'] },
  ];

  const grOptions = gr.enabled ? ['graceful restart on;', `graceful restart time ${gr.restartTime};`] : ['graceful restart off;'];
  return {
    node: printable(self.name),
    routerId: self.underlayIp,
    localAddress: self.underlayIp,
    asn,
    ipipMode: bgp.ipipMode,
    underlaySubnet: subnetText,
    tunnelDevice: tunnel,
    routeProtocol: BIRD_ROUTE_PROTOCOL,
    kernelRoutes: KERNEL_ROUTES[bgp.ipipMode](tunnel, subnetText),
    gracefulRestartWait: gr.waitTime,
    deviceScanTime: BGP_DEFAULTS.deviceScanTime,
    directInterfaces: `-"${tunnel}", "*"`,
    ownBlocks: [...new Set(ownBlocks)],
    filters,
    kernel: {
      name: KERNEL_PROTOCOL,
      table: k.table,
      metric: k.metric,
      scanTime: k.scanTime,
      // persist + graceful restart: a BIRD that stops or restarts leaves the routes in place
      // until its sessions are back, so pods keep their paths while the agent restarts.
      options: ['learn;', 'persist;', gr.enabled ? 'graceful restart on;' : 'graceful restart off;'],
    },
    internal: { timers: timerLines(t), options: grOptions, importFilter: 'bgp_import', exportFilter: 'bgp_export_internal' },
    external: { timers: timerLines(t), options: grOptions, exportFilter: 'bgp_export_external' },
    peers: peers.map(({ ip: _ip, order: _order, ...p }) => p),
    secrets,
  };
}

/** A registry record of the agent (one block) as a BIRD node. */
export function birdNodeOf(r: NodeRecord): BirdNode {
  return { name: r.name, underlayIp: r.underlayIp, blocks: r.block ? [r.block] : [] };
}
