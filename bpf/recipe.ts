// The vxlan dataplane as ordered commands with their probes and undos (pure): node setup,
// pod ADD/DEL, remote-node entries. The vxlan mode turns these into plan steps; the datapath
// test runs exactly these, in this order. Only map values that hold an ifindex need a fact
// known after a device exists (see configUpdate and endpointUpdate).
import { HOST, type Ns, type Predicate } from '../model/plan.ts';
import {
  ENDPOINTS, REMOTE, CONFIG, MAPS, PROGRAMS, DEFAULT_TTL,
  createArgs, loadallArgs, updateArgs, keyArgs, lookupJson,
  endpointEntry, remoteEntry, configEntry, endpointKey, remoteKey,
  type Entry, type Endpoint, type RemotePrefix, type MapSpec,
} from './maps.ts';

export interface Tools {
  ip: string;
  tc: string;
  bpftool: string;
  ethtool: string;
  mount: string;
  mkdir: string;
  rm: string;
  stat: string;
}

export const DEFAULT_TOOLS: Tools = {
  ip: '/usr/sbin/ip', tc: '/usr/sbin/tc', bpftool: '/usr/sbin/bpftool', ethtool: '/usr/sbin/ethtool',
  mount: '/usr/bin/mount', mkdir: '/usr/bin/mkdir', rm: '/usr/bin/rm', stat: '/usr/bin/stat',
};

/** A command of one tool (model/plan.ts Operation and Command, without file and wait). */
export type Mech = 'ip' | 'tc' | 'bpftool' | 'exec';
export interface ToolCommand {
  ns: Ns;
  mech: Mech;
  argv: string[];
}
/** A probe that runs a command (model/plan.ts Probe with an exec Query). */
export interface ExecProbe {
  ns: Ns;
  mech: 'exec';
  argv: string[];
  expect: Predicate;
}

export interface RecipeStep {
  id: string;
  ns: Ns;
  /** `ip`, `tc` and `bpftool` commands carry no global options (batchable); others are `exec` */
  mech: Mech;
  argv: string[];
  /** stdin, for `bpftool batch file -` */
  input?: string;
  probe: ExecProbe | null;
  /** false for a step whose probe says "nothing to do" rather than "in effect" (it holds only if skipped) */
  probeHoldsAfter?: false;
  undo: ToolCommand | null;
  describe: string;
}

export interface NodeDataplane {
  tools: Tools;
  /** where bpffs is (to be) mounted */
  bpffs: string;
  /** this node's directory in bpffs, e.g. /sys/fs/bpf/testcni/NODE: nodes never share maps */
  pinDir: string;
  /** the compiled object (dist/bpf/vxlan.o) */
  object: string;
  device: string;
  /** fixed at creation: changing a VXLAN device's MAC flushes its neighbour entries */
  mac: string;
  mtu: number;
  port: number;
  vni: number;
  ttl?: number;
  /** this node's pod gateway (first address of its block): a /32 on the device, the source of node -> remote pod */
  gateway: string;
  /** the cluster pod CIDR, routed into the device for traffic the host stack sends */
  clusterSubnet: string;
  routeProtocol: number;
  /**
   * tx checksum offload on the VXLAN device; off unless true. Off works around the offload bugs
   * of kernels before 5.7 (peers' 63-second stalls) but also turns off TSO through the device,
   * which costs cross-node throughput several times over (bench/vxlan.mjs).
   */
  txChecksumOffload?: boolean;
  endpointsSize: number;
  remoteSize: number;
}

export const mapDir = (n: Pick<NodeDataplane, 'pinDir'>) => `${n.pinDir}/maps`;
export const progDir = (n: Pick<NodeDataplane, 'pinDir'>) => `${n.pinDir}/progs`;
export const mapPath = (n: Pick<NodeDataplane, 'pinDir'>, m: MapSpec) => `${mapDir(n)}/${m.name}`;
export const progPath = (n: Pick<NodeDataplane, 'pinDir'>, prog: string) => `${progDir(n)}/${prog}`;

function mapUpdate(tools: Tools, ns: Ns, path: string, e: Entry, id: string, describe: string, undo: boolean): RecipeStep {
  return {
    id,
    ns,
    mech: 'bpftool',
    argv: [tools.bpftool, 'map', 'update', 'pinned', path, ...updateArgs(e)],
    probe: { ns, mech: 'exec', argv: [tools.bpftool, '-j', 'map', 'lookup', 'pinned', path, ...keyArgs(e.key)], expect: { $text: lookupJson(e) } },
    undo: undo ? { ns, mech: 'bpftool', argv: [tools.bpftool, 'map', 'delete', 'pinned', path, ...keyArgs(e.key)] } : null,
    describe,
  };
}

/** A filter (pref 1, handle 1) running a pinned program; `replace` also swaps in a reloaded program. */
function filterStep(tools: Tools, ns: Ns, dev: string, dir: 'ingress' | 'egress', path: string, prog: string, id: string): RecipeStep {
  return {
    id,
    ns,
    mech: 'tc',
    argv: [tools.tc, 'filter', 'replace', 'dev', dev, dir, 'pref', '1', 'handle', '1', 'bpf', 'da', 'pinned', path],
    probe: { ns, mech: 'exec', argv: [tools.tc, '-j', 'filter', 'show', 'dev', dev, dir], expect: { $some: { pref: 1, kind: 'bpf', options: { 'direct-action': true, prog: { name: prog } } } } },
    undo: null,
    describe: `run ${prog} on ${dev} ${dir}`,
  };
}

function clsactStep(tools: Tools, ns: Ns, dev: string, id: string): RecipeStep {
  return {
    id,
    ns,
    mech: 'tc',
    argv: [tools.tc, 'qdisc', 'add', 'dev', dev, 'clsact'],
    probe: { ns, mech: 'exec', argv: [tools.tc, '-j', 'qdisc', 'show', 'dev', dev], expect: { $some: { kind: 'clsact' } } },
    undo: null,
    describe: `clsact qdisc on ${dev}`,
  };
}

/** The last program the object pins: present means loadall finished. */
function programsPinned(n: NodeDataplane): ExecProbe {
  const last = progPath(n, PROGRAMS.toVxlan);
  return { ns: HOST, mech: 'exec', argv: [n.tools.bpftool, '-j', '-f', 'prog', 'show'], expect: { $some: { name: PROGRAMS.toVxlan, pinned: { $some: last } } } };
}

/** Node setup up to (not including) the config entry, which needs the device's ifindex. */
export function nodeSetup(n: NodeDataplane): RecipeStep[] {
  const t = n.tools;
  const dev = n.device;
  const mapStep = (m: MapSpec, entries: number): RecipeStep => ({
    id: `bpf.map.create:host:${m.name}`,
    ns: HOST,
    mech: 'bpftool',
    argv: [t.bpftool, ...createArgs(m, mapPath(n, m), entries)],
    probe: {
      ns: HOST,
      mech: 'exec',
      argv: [t.bpftool, '-j', '-f', 'map', 'show'],
      expect: { $some: { name: m.name, type: m.type, bytes_key: m.keySize, bytes_value: m.valueSize, max_entries: entries, pinned: { $some: mapPath(n, m) } } },
    },
    undo: null,
    describe: `map ${m.name} (${m.type}, ${entries} entries) pinned in ${mapDir(n)}`,
  });
  const sizes: Record<string, number> = { [ENDPOINTS.name]: n.endpointsSize, [REMOTE.name]: n.remoteSize, [CONFIG.name]: 1 };
  return [
    {
      id: `bpffs:host:${n.bpffs}`,
      ns: HOST,
      mech: 'exec',
      argv: [t.mount, '-t', 'bpf', 'bpf', n.bpffs],
      probe: { ns: HOST, mech: 'exec', argv: [t.stat, '-f', '-c', '%T', n.bpffs], expect: { $text: 'bpf_fs' } },
      undo: null,
      describe: `mount bpffs on ${n.bpffs}`,
    },
    {
      id: `dir:host:${mapDir(n)}`,
      ns: HOST,
      mech: 'exec',
      argv: [t.mkdir, '-p', '-m', '0700', mapDir(n)],
      probe: { ns: HOST, mech: 'exec', argv: [t.stat, '-c', '%F', mapDir(n)], expect: { $text: 'directory' } },
      undo: null,
      describe: `pin directory ${n.pinDir}`,
    },
    {
      id: `link.vxlan:host:${dev}`,
      ns: HOST,
      // NOARP: the stack's next hop on the device is its own MAC; tcni_to_vxlan writes the remote one.
      mech: 'ip',
      argv: [t.ip, 'link', 'add', dev, 'address', n.mac, 'mtu', String(n.mtu), 'arp', 'off',
        'type', 'vxlan', 'external', 'dstport', String(n.port), 'nolearning'],
      probe: {
        ns: HOST,
        mech: 'exec',
        argv: [t.ip, '-j', '-d', 'link', 'show'],
        expect: { $some: { ifname: dev, address: n.mac, linkinfo: { info_kind: 'vxlan', info_data: { external: true, port: n.port } } } },
      },
      undo: null,
      describe: `VXLAN device ${dev} (external, port ${n.port}, mtu ${n.mtu}, mac ${n.mac})`,
    },
    {
      id: `ethtool:host:${dev}:tx`,
      ns: HOST,
      mech: 'exec',
      argv: [t.ethtool, '-K', dev, 'tx', n.txChecksumOffload ? 'on' : 'off'],
      probe: { ns: HOST, mech: 'exec', argv: [t.ethtool, '--json', '-k', dev], expect: { $some: { 'tx-checksumming': { active: n.txChecksumOffload === true } } } },
      undo: null,
      describe: `tx checksum offload ${n.txChecksumOffload ? 'on' : 'off'} on ${dev}`,
    },
    {
      id: `addr:host:${dev}`,
      ns: HOST,
      mech: 'ip',
      argv: [t.ip, 'addr', 'replace', `${n.gateway}/32`, 'dev', dev],
      probe: { ns: HOST, mech: 'exec', argv: [t.ip, '-j', 'addr', 'show', 'dev', dev], expect: { $some: { addr_info: { $some: { local: n.gateway, prefixlen: 32 } } } } },
      undo: null,
      describe: `gateway ${n.gateway}/32 on ${dev}`,
    },
    {
      id: `link.up:host:${dev}`,
      ns: HOST,
      mech: 'ip',
      argv: [t.ip, 'link', 'set', dev, 'up'],
      probe: { ns: HOST, mech: 'exec', argv: [t.ip, '-j', 'link', 'show', 'dev', dev], expect: { $some: { flags: { $some: 'UP' } } } },
      undo: null,
      describe: `bring ${dev} up`,
    },
    {
      id: `route:host:${n.clusterSubnet}`,
      ns: HOST,
      mech: 'ip',
      argv: [t.ip, 'route', 'replace', n.clusterSubnet, 'dev', dev, 'src', n.gateway, 'proto', String(n.routeProtocol)],
      probe: {
        ns: HOST,
        mech: 'exec',
        argv: [t.ip, '-j', 'route', 'show', n.clusterSubnet],
        expect: { $some: { dst: n.clusterSubnet, dev, prefsrc: n.gateway, protocol: String(n.routeProtocol) } },
      },
      undo: null,
      describe: `route ${n.clusterSubnet} into ${dev} from ${n.gateway} (node -> remote pods)`,
    },
    ...MAPS.map((m) => mapStep(m, sizes[m.name]!)),
    {
      // Clears pins a killed loadall left behind; skipped when the programs are all there.
      id: `bpf.progs.clear:host:${progDir(n)}`,
      ns: HOST,
      mech: 'exec',
      argv: [t.rm, '-rf', progDir(n)],
      probe: programsPinned(n),
      probeHoldsAfter: false,
      undo: null,
      describe: `remove partly pinned programs in ${progDir(n)}`,
    },
    {
      id: `bpf.progs:host:${progDir(n)}`,
      ns: HOST,
      mech: 'bpftool',
      argv: [t.bpftool, ...loadallArgs(n.object, progDir(n), mapDir(n))],
      probe: programsPinned(n),
      undo: null,
      describe: `load ${n.object} and pin its programs in ${progDir(n)}, on the maps above`,
    },
  ];
}

/** After nodeSetup: the config entry (needs the device's ifindex), then the device's programs. */
export function nodeAttach(n: NodeDataplane, vxlanIfindex: number): RecipeStep[] {
  const e = configEntry({ vxlanIfindex, vni: n.vni, vxlanMac: n.mac, ttl: n.ttl ?? DEFAULT_TTL });
  return [
    mapUpdate(n.tools, HOST, mapPath(n, CONFIG), e, `bpf.map.update:host:${CONFIG.name}`, `config: ${n.device} ifindex ${vxlanIfindex}, VNI ${n.vni}`, false),
    clsactStep(n.tools, HOST, n.device, `tc.qdisc:host:${n.device}`),
    filterStep(n.tools, HOST, n.device, 'ingress', progPath(n, PROGRAMS.fromVxlan), PROGRAMS.fromVxlan, `tc.filter:host:${n.device}:ingress`),
    filterStep(n.tools, HOST, n.device, 'egress', progPath(n, PROGRAMS.toVxlan), PROGRAMS.toVxlan, `tc.filter:host:${n.device}:egress`),
  ];
}

export interface PodDataplane {
  tools: Tools;
  /** the pod's netns path */
  netns: string;
  ifName: string;
  hostVeth: string;
  podMac: string;
  hostMac: string;
  /** the pod's address, without prefix length (it gets a /32) */
  ip: string;
  /** the node's gateway (see NodeDataplane.gateway) */
  gateway: string;
  mtu: number;
  /** a PID (or netns name) of the node's namespace, where the veth's host end is born */
  nodeNetns: string;
  routeProtocol: number;
}

/** Pod ADD up to (not including) the endpoint entry, which needs the host veth's ifindex. */
export function podSetup(n: Pick<NodeDataplane, 'pinDir'>, p: PodDataplane): RecipeStep[] {
  const t = p.tools;
  const pod = p.netns;
  return [
    {
      id: `link.veth:pod:${p.ifName}`,
      ns: pod,
      mech: 'ip',
      argv: [t.ip, 'link', 'add', p.ifName, 'address', p.podMac, 'mtu', String(p.mtu), 'type', 'veth',
        'peer', 'name', p.hostVeth, 'address', p.hostMac, 'mtu', String(p.mtu), 'netns', p.nodeNetns],
      probe: { ns: HOST, mech: 'exec', argv: [t.ip, '-j', 'link', 'show'], expect: { $some: { ifname: p.hostVeth } } },
      undo: { ns: HOST, mech: 'ip', argv: [t.ip, 'link', 'del', p.hostVeth] },
      describe: `veth ${p.ifName} in the pod, ${p.hostVeth} on the node (mtu ${p.mtu})`,
    },
    {
      id: `addr:pod:${p.ifName}`,
      ns: pod,
      mech: 'ip',
      argv: [t.ip, 'addr', 'add', `${p.ip}/32`, 'dev', p.ifName],
      probe: { ns: pod, mech: 'exec', argv: [t.ip, '-j', 'addr', 'show', 'dev', p.ifName], expect: { $some: { addr_info: { $some: { local: p.ip, prefixlen: 32 } } } } },
      undo: null,
      describe: `address ${p.ip}/32 on ${p.ifName}`,
    },
    {
      id: `link.up:pod:${p.ifName}`,
      ns: pod,
      mech: 'ip',
      argv: [t.ip, 'link', 'set', p.ifName, 'up'],
      probe: { ns: pod, mech: 'exec', argv: [t.ip, '-j', 'link', 'show', 'dev', p.ifName], expect: { $some: { flags: { $some: 'UP' } } } },
      undo: null,
      describe: `bring ${p.ifName} up`,
    },
    {
      id: `neigh:pod:${p.gateway}`,
      ns: pod,
      mech: 'ip',
      argv: [t.ip, 'neigh', 'replace', p.gateway, 'lladdr', p.hostMac, 'dev', p.ifName, 'nud', 'permanent'],
      probe: {
        ns: pod,
        mech: 'exec',
        argv: [t.ip, '-j', 'neigh', 'show', 'dev', p.ifName],
        expect: { $some: { dst: p.gateway, lladdr: p.hostMac, state: { $some: 'PERMANENT' } } },
      },
      undo: null,
      describe: `gateway ${p.gateway} is ${p.hostMac} (no ARP)`,
    },
    {
      id: 'route:pod:default',
      ns: pod,
      mech: 'ip',
      argv: [t.ip, 'route', 'add', 'default', 'via', p.gateway, 'dev', p.ifName, 'onlink'],
      probe: { ns: pod, mech: 'exec', argv: [t.ip, '-j', 'route', 'show', 'default'], expect: { $some: { dst: 'default', gateway: p.gateway, dev: p.ifName } } },
      undo: null,
      describe: `default route via ${p.gateway}`,
    },
    {
      id: `link.up:host:${p.hostVeth}`,
      ns: HOST,
      mech: 'ip',
      argv: [t.ip, 'link', 'set', p.hostVeth, 'up'],
      probe: { ns: HOST, mech: 'exec', argv: [t.ip, '-j', 'link', 'show', 'dev', p.hostVeth], expect: { $some: { flags: { $some: 'UP' } } } },
      undo: null,
      describe: `bring ${p.hostVeth} up`,
    },
    {
      id: `route:host:${p.ip}`,
      ns: HOST,
      mech: 'ip',
      argv: [t.ip, 'route', 'replace', `${p.ip}/32`, 'dev', p.hostVeth, 'proto', String(p.routeProtocol)],
      probe: { ns: HOST, mech: 'exec', argv: [t.ip, '-j', 'route', 'show', `${p.ip}/32`], expect: { $some: { dst: p.ip, dev: p.hostVeth } } },
      undo: null,
      describe: `route ${p.ip}/32 via ${p.hostVeth} (node and Services reach the pod)`,
    },
    clsactStep(t, HOST, p.hostVeth, `tc.qdisc:host:${p.hostVeth}`),
    filterStep(t, HOST, p.hostVeth, 'ingress', progPath(n, PROGRAMS.fromPod), PROGRAMS.fromPod, `tc.filter:host:${p.hostVeth}:ingress`),
  ];
}

/** Last step of a pod ADD: other pods and the tunnel deliver to it from now on. Undone first on DEL. */
export function endpointUpdate(n: Pick<NodeDataplane, 'pinDir'>, tools: Tools, ep: Endpoint): RecipeStep {
  return mapUpdate(tools, HOST, mapPath(n, ENDPOINTS), endpointEntry(ep), `bpf.map.update:host:${ENDPOINTS.name}:${ep.ip}`,
    `endpoint ${ep.ip} -> ifindex ${ep.ifindex}`, true);
}

/** Pod DEL without a journal: the endpoint entry, then the veth (its route, qdisc and filter go with it). */
export function podTeardown(n: Pick<NodeDataplane, 'pinDir'>, tools: Tools, p: Pick<PodDataplane, 'ip' | 'hostVeth'>): ToolCommand[] {
  return [
    { ns: HOST, mech: 'bpftool', argv: [tools.bpftool, 'map', 'delete', 'pinned', mapPath(n, ENDPOINTS), ...keyArgs(endpointKey(p.ip))] },
    { ns: HOST, mech: 'ip', argv: [tools.ip, 'link', 'del', p.hostVeth] },
  ];
}

/** A remote node: its block and its underlay address (pods reach other nodes through the tunnel). */
export function remoteUpdates(n: Pick<NodeDataplane, 'pinDir'>, tools: Tools, node: { block: string; nodeIp: string; vtepMac: string }): RecipeStep[] {
  const prefixes: RemotePrefix[] = [
    { cidr: node.block, nodeIp: node.nodeIp, vtepMac: node.vtepMac },
    { cidr: `${node.nodeIp}/32`, nodeIp: node.nodeIp, vtepMac: node.vtepMac },
  ];
  return prefixes.map((r) => mapUpdate(tools, HOST, mapPath(n, REMOTE), remoteEntry(r), `bpf.map.update:host:${REMOTE.name}:${r.cidr}`,
    `${r.cidr} -> node ${r.nodeIp}`, true));
}

/** A departed node's prefixes, removed by the reconciler. */
export function remoteDeletes(n: Pick<NodeDataplane, 'pinDir'>, tools: Tools, cidrs: string[]): ToolCommand[] {
  return cidrs.map((c) => ({ ns: HOST, mech: 'bpftool', argv: [tools.bpftool, 'map', 'delete', 'pinned', mapPath(n, REMOTE), ...keyArgs(remoteKey(c))] }));
}

/** Many map commands in one bpftool process: `bpftool batch file -` with these lines on stdin. */
export function batchInput(commands: ToolCommand[]): string {
  return commands.map((c) => {
    const args = c.argv.slice(1);
    if (args.some((a) => /\s/.test(a) || a === '')) throw new Error(`bpftool batch: argument with white space in ${args.join(' ')}`);
    return args.join(' ');
  }).join('\n') + '\n';
}
