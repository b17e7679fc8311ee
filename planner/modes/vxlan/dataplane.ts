// The vxlan eBPF dataplane as plan steps (pure): what a node holds (bpffs, its pin directory,
// the external VXLAN device, the maps, the programs, their filters and config entry) and what a
// pod adds (its filter and its endpoint entry), each with a probe and, where DEL needs one, an
// undo. The pod plan, the node plan and the datapath test all take their steps from here.
//
// Identity of a node's dataplane: its block gives the VXLAN device's MAC (other nodes write it
// as the inner destination, so it must be known to them: they derive it from the block in the
// registry) and the gateway (the block's first address, a /32 on the device); its network
// namespace gives the pin directory, since the maps hold that namespace's ifindexes.
import { HOST, ifindexToken, type BpfObject, type NodeFacts, type Probe, type Step, type Tools } from '../../../model/plan.ts';
import { derivedMac } from '../../names.ts';
import { fnv1a64 } from '../../../lib/hash.ts';
import { parseCidr, formatIp } from '../../../lib/ipv4.ts';
import {
  ENDPOINTS, REMOTE, CONFIG, MAPS, PROGRAMS, DEFAULT_TTL,
  createArgs, loadallArgs, updateArgs, keyArgs, lookupJson, linksOf,
  endpointEntry, remoteEntry, configEntry, endpointKey, remoteKey,
  type Entry, type MapSpec, type RemotePrefix, type LinkIndex,
} from '../../../bpf/maps.ts';
import type { NetworkConfig } from '../../../model/config.ts';
import type { VxlanConfig } from './config.ts';

/** The object the build compiles from bpf/vxlan.c. */
export const OBJECT = 'vxlan.o';
/** statfs magic of bpffs (the `path` query's `fs`). */
export const BPF_FS_MAGIC = 'cafe4a11';
/** What the node's programs and maps need beyond ip. */
export const TOOLS = ['tc', 'bpftool', 'ethtool', 'mount', 'mkdir', 'mv', 'rm', 'rmdir'] as const;

export interface NodeDataplane {
  tools: Tools;
  bpffs: string;
  /** this node's directory in bpffs: nodes never share maps */
  pinDir: string;
  object: BpfObject;
  device: string;
  /** fixed at creation: changing a VXLAN device's MAC flushes its neighbour entries */
  mac: string;
  mtu: number;
  port: number;
  vni: number;
  ttl: number;
  /** this node's pod gateway (first address of its block): a /32 on the device */
  gateway: string;
  txChecksumOffload: { on: boolean; why: string };
  endpointsSize: number;
  remoteSize: number;
  /** a process of the node (the planner's caller): programs are loaded into a directory of its own first */
  hostPid: number;
}

/** A pinned program or map as `bpftool … show pinned` reports it, with its pin. */
export interface PinnedObject { path: string; id: number; name: string; max_entries?: number }

/**
 * A query per pin, `bpftool -j <kind> show pinned <pin>`, named `show.<kind>:<pin>`. Listing every
 * program or map (`bpftool prog show`) walks ids, which needs CAP_SYS_ADMIN; showing a pinned one
 * needs CAP_BPF only, which is all the agent's container has. (Not one `bpftool batch` of them:
 * `prog show` also looks up the program's maps by id, which fails quietly without CAP_SYS_ADMIN,
 * and batch then fails on the errno left behind.)
 */
export function showPinnedQueries(tools: Tools, kind: 'prog' | 'map', paths: string[]): Record<string, Probe> {
  return Object.fromEntries(paths.map((p) => [`show.${kind}:${p}`, { ns: HOST, mech: 'exec', argv: [tools.bpftool!, '-j', kind, 'show', 'pinned', p], expect: { $exit: 0 } } satisfies Probe]));
}

/** What showPinnedQueries showed: each object with its pin. */
export function pinnedObjects(observed: Record<string, unknown>, kind: 'prog' | 'map'): PinnedObject[] {
  const prefix = `show.${kind}:`;
  return Object.entries(observed).flatMap(([key, v]) => {
    const o = v as { id?: unknown; name?: unknown; max_entries?: unknown } | null;
    if (!key.startsWith(prefix) || typeof o?.id !== 'number') return [];
    return [{ path: key.slice(prefix.length), id: o.id, name: String(o.name ?? ''), ...(typeof o.max_entries === 'number' ? { max_entries: o.max_entries } : {}) }];
  }).sort((a, b) => (a.path < b.path ? -1 : 1));
}

/** The node's pin directory as a `path` query that lists what it holds. */
export function pinListingQuery(n: Pick<NodeDataplane, 'pinDir'>): Probe {
  return { ns: HOST, mech: 'path', path: n.pinDir, list: true, expect: { $some: { type: 'directory' } } };
}

/** The pins below the node's pin directory that `match` a relative path, from pinListingQuery. */
export function pinsListed(n: Pick<NodeDataplane, 'pinDir'>, listing: unknown, match: RegExp): string[] {
  const files = Array.isArray(listing) ? (listing[0] as { files?: string[] } | undefined)?.files ?? [] : [];
  return files.filter((f) => match.test(f)).map((f) => `${n.pinDir}/${f}`);
}

/** Programs of every build, fully loaded (a load's temporary directory is not one). */
export const PROGRAM_PINS = /^progs-[0-9a-f]+\/[^/]+$/;

/** The VXLAN device MAC of the node that owns `block`: every node derives the same from the registry. */
export function vtepMac(block: string): string {
  return derivedMac(`vxlan/${block}`);
}

/** The block's first address: the gateway of its pods, held by the node's VXLAN device. */
export function blockGateway(block: string): string {
  const c = parseCidr(block);
  if (!c) throw new Error(`not a block: ${block}`);
  return formatIp(c.base + 1);
}

/** bpffs refuses names with a dot (it keeps those for its own files). */
function bpffsName(name: string): string {
  return name.includes('.') ? `${name.replace(/\./g, '_')}-${fnv1a64(name).slice(0, 8)}` : name;
}

/** Where a network's pins live on this machine, one directory per node (network namespace). */
export function networkPinRoot(config: NetworkConfig<string, VxlanConfig>): string {
  return `${config.modeConfig.bpffs}/testcni/${bpffsName(config.name)}`;
}

export function pinDirOf(config: NetworkConfig<string, VxlanConfig>, facts: Pick<NodeFacts, 'netns'>): string {
  return `${networkPinRoot(config)}/netns-${facts.netns ?? 'unknown'}`;
}

/** The node's dataplane for its block; `gateway` is the pods' (the block's first address unless
 *  file IPAM names another). */
export function nodeDataplane(config: NetworkConfig<string, VxlanConfig>, facts: NodeFacts, block: string, gateway: string, mtu: number): NodeDataplane {
  const v = config.modeConfig;
  return {
    tools: facts.tools,
    bpffs: v.bpffs,
    pinDir: pinDirOf(config, facts),
    object: facts.objects?.[OBJECT] ?? { path: `/usr/lib/testcni/bpf/${OBJECT}`, digest: 'missing' },
    device: v.device,
    mac: vtepMac(block),
    mtu,
    port: v.port,
    vni: v.vni,
    ttl: DEFAULT_TTL,
    gateway,
    txChecksumOffload: txOffload(v.txChecksumOffload, facts.kernel),
    endpointsSize: v.maxEndpoints,
    remoteSize: 2 * v.maxRemoteBlocks,
    hostPid: facts.hostPid,
  };
}

/** The kernel release from which VXLAN tx checksum offload is safe (the fix of the bug that
 *  made Calico and the original turn it off). */
export const TX_OFFLOAD_SAFE_FROM = [5, 7] as const;

/** Whether the device offloads tx checksums, and why: as configured, or by kernel release. */
export function txOffload(setting: boolean | 'auto', kernel: string | undefined): { on: boolean; why: string } {
  if (setting !== 'auto') return { on: setting, why: 'configured' };
  const m = /^(\d+)\.(\d+)/.exec(kernel ?? '');
  if (!m) return { on: false, why: 'auto: kernel release unknown' };
  const [maj, min] = [Number(m[1]), Number(m[2])];
  const safe = maj > TX_OFFLOAD_SAFE_FROM[0] || (maj === TX_OFFLOAD_SAFE_FROM[0] && min >= TX_OFFLOAD_SAFE_FROM[1]);
  return { on: safe, why: `auto: Linux ${maj}.${min} is ${safe ? '5.7 or later' : 'before 5.7'}` };
}

export const mapDir = (n: Pick<NodeDataplane, 'pinDir'>) => `${n.pinDir}/maps`;
/** Programs of one build: a new object is loaded beside the old, never mistaken for it. */
export const progDir = (n: Pick<NodeDataplane, 'pinDir' | 'object'>) => `${n.pinDir}/progs-${n.object.digest}`;
export const mapPath = (n: Pick<NodeDataplane, 'pinDir'>, m: MapSpec) => `${mapDir(n)}/${m.name}`;
export const progPath = (n: Pick<NodeDataplane, 'pinDir' | 'object'>, prog: string) => `${progDir(n)}/${prog}`;

const NODE_STATE = 'node state shared by every pod';

function pathProbe(path: string, expect: Probe['expect']): Probe {
  return { ns: HOST, mech: 'path', path, expect };
}

function nodeExec(id: string, kind: Step['kind'], argv: string[], probe: Probe | null, describe: string, idempotent = false): Step {
  return { id, kind, scope: 'node', ns: HOST, mech: 'exec', argv, idempotent, undo: null, undoReason: NODE_STATE, probe, describe };
}

/** A map entry; `undo` deletes it (pod entries, remote prefixes). The probe compares the entry
 *  bpftool prints with the one wanted, ifindexes read when it runs. */
export function mapUpdateStep(n: Pick<NodeDataplane, 'tools' | 'pinDir'>, m: MapSpec, e: Entry, o: { id: string; scope: Step['scope']; describe: string; undo: boolean }): Step {
  const path = mapPath(n, m);
  const bpftool = n.tools.bpftool!;
  const links = linksOf(e.value);
  return {
    id: o.id,
    kind: 'bpf.map.update',
    scope: o.scope,
    ns: HOST,
    mech: 'bpftool',
    argv: [bpftool, 'map', 'update', 'pinned', path, ...updateArgs(e)],
    ...(links.length ? { ifindexOf: links } : {}),
    idempotent: true,
    undo: o.undo ? { ns: HOST, mech: 'bpftool', argv: [bpftool, 'map', 'delete', 'pinned', path, ...keyArgs(e.key)] } : null,
    ...(o.undo ? {} : { undoReason: o.scope === 'node' ? NODE_STATE : 'rewritten by the next ADD' }),
    probe: {
      ns: HOST, mech: 'exec', argv: [bpftool, '-j', 'map', 'lookup', 'pinned', path, ...keyArgs(e.key)],
      ...(links.length ? { ifindexOf: links } : {}), expect: { $text: lookupJson(e) },
    },
    describe: o.describe,
  };
}

export function mapDeleteStep(n: Pick<NodeDataplane, 'tools' | 'pinDir'>, m: MapSpec, key: number[], id: string, describe: string): Step {
  const path = mapPath(n, m);
  const bpftool = n.tools.bpftool!;
  return {
    id, kind: 'bpf.map.delete', scope: 'node', ns: HOST, mech: 'bpftool',
    argv: [bpftool, 'map', 'delete', 'pinned', path, ...keyArgs(key)],
    idempotent: false, undo: null, undoReason: 'a removal',
    // Done when bpftool finds no such entry (lookup fails).
    probe: { ns: HOST, mech: 'exec', argv: [bpftool, 'map', 'lookup', 'pinned', path, ...keyArgs(key)], expect: { $not: { $exit: 0 } } },
    describe,
  };
}

/** `tc qdisc replace … clsact` keeps the filters of a clsact that is there: safe to repeat. */
function clsactStep(n: Pick<NodeDataplane, 'tools'>, dev: string, scope: Step['scope']): Step {
  return {
    id: `tc.qdisc:host:${dev}`, kind: 'tc.qdisc', scope, ns: HOST, mech: 'tc',
    argv: [n.tools.tc!, 'qdisc', 'replace', 'dev', dev, 'clsact'],
    idempotent: true, undo: null, undoReason: scope === 'node' ? NODE_STATE : 'removed with the veth',
    probe: { ns: HOST, mech: 'exec', argv: [n.tools.tc!, '-j', 'qdisc', 'show', 'dev', dev], expect: { $some: { kind: 'clsact' } } },
    describe: `clsact qdisc on ${dev}`,
  };
}

/** A filter (pref 1, handle 1) running a pinned program; `replace` also swaps in a newer build. */
export function filterStepOn(n: Pick<NodeDataplane, 'tools' | 'pinDir' | 'object'>, dev: string, dir: 'ingress' | 'egress', prog: string, scope: Step['scope']): Step {
  return {
    id: `tc.filter:host:${dev}:${dir}`, kind: 'tc.filter', scope, ns: HOST, mech: 'tc',
    argv: [n.tools.tc!, 'filter', 'replace', 'dev', dev, dir, 'pref', '1', 'handle', '1', 'bpf', 'da', 'pinned', progPath(n, prog)],
    idempotent: true, undo: null, undoReason: scope === 'node' ? NODE_STATE : 'removed with the veth',
    probe: {
      ns: HOST, mech: 'exec', argv: [n.tools.tc!, '-j', 'filter', 'show', 'dev', dev, dir],
      expect: { $some: { pref: 1, kind: 'bpf', options: { 'direct-action': true, prog: { name: prog } } } },
    },
    describe: `run ${prog} on ${dev} ${dir}`,
  };
}

/** The last program the object pins: present means its directory is complete (it is renamed into
 *  place whole). */
export function programsProbe(n: Pick<NodeDataplane, 'pinDir' | 'object'>): Probe {
  return pathProbe(progPath(n, PROGRAMS.toVxlan), { $some: { type: 'file' } });
}

/**
 * What must exist before any pod can be wired: bpffs, the pin directory, the VXLAN device, the
 * maps and the programs. Every probe is answered in-process (the ADD of every pod runs them),
 * except the offload setting's, which no file shows. The programs are loaded into a directory of
 * this process's own and renamed into place, so two ADDs racing on a fresh node never see (or
 * remove) each other's half-pinned programs: the loser's rename fails, its probe then holds.
 */
export function nodeEnsureSteps(n: NodeDataplane): Step[] {
  const t = n.tools;
  const tmp = `${progDir(n)}-tmp${n.hostPid}`;
  const sizes: Record<string, number> = { [ENDPOINTS.name]: n.endpointsSize, [REMOTE.name]: n.remoteSize, [CONFIG.name]: 1 };
  return [
    nodeExec(`bpffs:host:${n.bpffs}`, 'fs.mount', [t.mount!, '-t', 'bpf', 'bpf', n.bpffs], pathProbe(n.bpffs, { $some: { fs: BPF_FS_MAGIC } }), `mount bpffs on ${n.bpffs}`),
    // bpftool would try to mount bpffs on a missing parent: the directories come first.
    nodeExec(`dir:host:${mapDir(n)}`, 'fs.mkdir', [t.mkdir!, '-p', '-m', '0700', mapDir(n)], pathProbe(mapDir(n), { $some: { type: 'directory' } }), `pin directory ${n.pinDir}`, true),
    {
      // NOARP: the stack's next hop on the device is its own MAC; the programs write the remote one.
      id: `link.vxlan:host:${n.device}`, kind: 'link.add', scope: 'node', ns: HOST, mech: 'ip',
      argv: [t.ip, 'link', 'add', 'name', n.device, 'address', n.mac, 'mtu', String(n.mtu), 'arp', 'off',
        'type', 'vxlan', 'external', 'dstport', String(n.port), 'nolearning'],
      idempotent: false, undo: null, undoReason: NODE_STATE,
      probe: { ns: HOST, mech: 'links', argv: [t.ip, '-j', 'link', 'show'], expect: { $some: { ifname: n.device } } },
      describe: `VXLAN device ${n.device} (external, port ${n.port}, mtu ${n.mtu}, mac ${n.mac})`,
    },
    {
      ...nodeExec(`ethtool:host:${n.device}:tx`, 'link.set', [t.ethtool!, '-K', n.device, 'tx', n.txChecksumOffload.on ? 'on' : 'off'],
        { ns: HOST, mech: 'exec', argv: [t.ethtool!, '--json', '-k', n.device], expect: { $some: { 'tx-checksumming': { active: n.txChecksumOffload.on } } } },
        `${n.device}: tx checksum offload ${n.txChecksumOffload.on ? 'on' : 'off'} (${n.txChecksumOffload.why})`, true),
    },
    ...MAPS.map((m): Step => ({
      id: `bpf.map.create:host:${m.name}`, kind: 'bpf.map.create', scope: 'node', ns: HOST, mech: 'bpftool',
      argv: [t.bpftool!, ...createArgs(m, mapPath(n, m), sizes[m.name]!)],
      idempotent: false, undo: null, undoReason: NODE_STATE,
      probe: pathProbe(mapPath(n, m), { $some: { type: 'file' } }),
      describe: `map ${m.name} (${m.type}, ${sizes[m.name]} entries) pinned in ${mapDir(n)}`,
    })),
    {
      // Not through `bpftool batch`: after a loadall the batch fails on the errno libbpf left
      // behind ("reading batch file failed: File exists"), though the programs are pinned.
      id: `bpf.load:host:${progDir(n)}`, kind: 'bpf.load', scope: 'node', ns: HOST, mech: 'exec',
      argv: [t.bpftool!, ...loadallArgs(n.object.path, tmp, mapDir(n))],
      idempotent: false, undo: null, undoReason: NODE_STATE,
      probe: programsProbe(n),
      describe: `load ${n.object.path} (digest ${n.object.digest}) on the maps above, pinned in ${tmp}`,
    },
    nodeExec(`fs.rename:host:${progDir(n)}`, 'fs.rename', [t.mv!, '-T', tmp, progDir(n)], programsProbe(n), `move the programs into place: ${progDir(n)}`),
    // Left only when another ADD renamed its own first.
    nodeExec(`fs.remove:host:${progDir(n)}-tmp`, 'fs.remove', [t.rm!, '-rf', tmp], pathProbe(tmp, { $exit: 1 }), `remove ${tmp} if another ADD was first`, true),
  ];
}

/** The device's address and state: safe to repeat, so ADD repeats them in its own `ip` batch. */
export function deviceSteps(n: NodeDataplane): Step[] {
  const t = n.tools;
  return [
    {
      id: `addr:host:${n.device}`, kind: 'addr.add', scope: 'node', ns: HOST, mech: 'ip',
      argv: [t.ip, 'addr', 'replace', `${n.gateway}/32`, 'dev', n.device],
      idempotent: true, undo: null, undoReason: NODE_STATE,
      probe: { ns: HOST, mech: 'exec', argv: [t.ip, '-j', 'addr', 'show', 'dev', n.device], expect: { $some: { addr_info: { $some: { local: n.gateway, prefixlen: 32 } } } } },
      describe: `gateway ${n.gateway}/32 on ${n.device}`,
    },
    {
      id: `link.up:host:${n.device}`, kind: 'link.set', scope: 'node', ns: HOST, mech: 'ip',
      argv: [t.ip, 'link', 'set', 'dev', n.device, 'up'],
      idempotent: true, undo: null, undoReason: NODE_STATE,
      probe: { ns: HOST, mech: 'exec', argv: [t.ip, '-j', 'link', 'show', 'dev', n.device], expect: { $some: { flags: { $some: 'UP' } } } },
      describe: `bring ${n.device} up`,
    },
  ];
}

/** The device's clsact and programs (VXLAN ingress: deliver to local pods; egress: key what the
 *  node's stack sends into the device). */
export function deviceFilterSteps(n: NodeDataplane): Step[] {
  return [
    clsactStep(n, n.device, 'node'),
    filterStepOn(n, n.device, 'ingress', PROGRAMS.fromVxlan, 'node'),
    filterStepOn(n, n.device, 'egress', PROGRAMS.toVxlan, 'node'),
  ];
}

/** The config entry: the device's ifindex, VNI, MAC and outer TTL (without it the VXLAN ingress
 *  program drops everything). */
export function configStep(n: NodeDataplane, ifindex: number | LinkIndex = { ifindexOf: n.device }): Step {
  const e = configEntry({ vxlanIfindex: ifindex, vni: n.vni, vxlanMac: n.mac, ttl: n.ttl });
  return mapUpdateStep(n, CONFIG, e, { id: `bpf.map.update:host:${CONFIG.name}`, scope: 'node', undo: false, describe: `config: ${n.device}, VNI ${n.vni}, mac ${n.mac}, TTL ${n.ttl}` });
}

export interface PodEndpoint {
  ip: string;
  hostVeth: string;
  podMac: string;
  hostMac: string;
}

/** The pod's host-side filter: every packet the pod sends goes through tcni_from_pod. */
export function podFilterSteps(n: NodeDataplane, hostVeth: string): Step[] {
  return [clsactStep(n, hostVeth, 'pod'), filterStepOn(n, hostVeth, 'ingress', PROGRAMS.fromPod, 'pod')];
}

/** The endpoint entry, last: from now on other pods and the tunnel deliver to the pod, and its
 *  own IPv4 passes (the program drops sources it does not know). DEL undoes it first. */
export function endpointStep(n: Pick<NodeDataplane, 'tools' | 'pinDir'>, ep: PodEndpoint): Step {
  const e = endpointEntry({ ip: ep.ip, ifindex: { ifindexOf: ep.hostVeth }, podMac: ep.podMac, hostMac: ep.hostMac });
  return mapUpdateStep(n, ENDPOINTS, e, { id: `bpf.map.update:host:${ENDPOINTS.name}:${ep.ip}`, scope: 'pod', undo: true, describe: `endpoint ${ep.ip} -> ${ep.hostVeth}` });
}

export function endpointDeleteStep(n: Pick<NodeDataplane, 'tools' | 'pinDir'>, ip: string, why: string): Step {
  return mapDeleteStep(n, ENDPOINTS, endpointKey(ip), `bpf.map.delete:host:${ENDPOINTS.name}:${ip}`, `remove endpoint ${ip} (${why})`);
}

/** The prefixes a remote node contributes: its block, and its underlay address (pods reach other
 *  nodes through the tunnel too). */
export function remotePrefixes(node: { block: string; underlayIp: string }): RemotePrefix[] {
  const vtep = vtepMac(node.block);
  return [
    { cidr: node.block, nodeIp: node.underlayIp, vtepMac: vtep },
    { cidr: `${node.underlayIp}/32`, nodeIp: node.underlayIp, vtepMac: vtep },
  ];
}

export function remoteStep(n: Pick<NodeDataplane, 'tools' | 'pinDir'>, r: RemotePrefix, node: string): Step {
  return mapUpdateStep(n, REMOTE, remoteEntry(r), {
    id: `bpf.map.update:host:${REMOTE.name}:${r.cidr}`, scope: 'node', undo: false, describe: `${r.cidr} -> node ${node} (${r.nodeIp})`,
  });
}

export function remoteDeleteStep(n: Pick<NodeDataplane, 'tools' | 'pinDir'>, cidr: string): Step {
  return mapDeleteStep(n, REMOTE, remoteKey(cidr), `bpf.map.delete:host:${REMOTE.name}:${cidr}`, `remove ${cidr} (its node left)`);
}

export { ifindexToken };
