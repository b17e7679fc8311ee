// A simulated node for each mode the runtime and chaining tests run, wired to a node network:
// the node's eth0 (198.18.0.11) on a "wire" namespace that holds the gateway (198.18.0.1) and
// plays another host on that network. Each mode says from where a new pod must answer at once
// (host-gw: the node, and the wire through the node's route; macvlan, ipvlan: the wire, never
// their own node) and what the node keeps of a pod (host-gw's veth; nothing for a child link).
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { settledNodeState, type Scope } from './e2e.ts';
import { inNetns, addNetns, delNetns, uniquePrefix, treeSnapshot, type TestNode } from './netns.ts';
import { uplinkNode, WIRE } from './uplink.ts';
import { testLab, etcdHandles } from './lab.ts';
import { BPFFS, bpfSkipReason, ensureBpffs, removePins } from './bpf.ts';
import { hostVethName } from '../../planner/names.ts';
import type { LabState } from '../../lab/state.ts';

export interface ModeNode {
  mode: string;
  node: TestNode;
  /** the wire's netns: the gateway, and another host on the node network */
  wire: string;
  /** the node's address on the node network (where a hostPort is reached) */
  nodeIp: string;
  /** netns that must reach a new pod at once */
  reachFrom: string[];
  /** netns that, by the mode, cannot reach a pod at all (macvlan and ipvlan: the pod's own node) */
  cannotReach: string[];
  /** an address a pod must reach: its gateway (host-gw, macvlan), the other node (ipip: its
   *  gateway 169.254.1.1 is an address nobody holds, answered for by proxy ARP only) */
  podReaches: string;
  /** the addresses pods get */
  podAddress: RegExp;
  /** the network config on this node; `extra` overrides its keys */
  config(extra?: Record<string, unknown>): Record<string, unknown>;
  /** the node-side interface of a pod, when the mode makes one (host-gw's veth) */
  hostIf(containerId: string, ifName?: string): string | null;
  /** the kind of the pod's interface (`ip -d link`'s info_kind), null for a veth */
  podLinkKind: string | null;
  /** who holds an address in IPAM ("containerId/ifName"), or undefined */
  reservation(ip: string): string | undefined;
  /** the lab, for a node of one (agents, etcd, BIRD) */
  lab?: LabState;
}

/** The node's file IPAM reservations of its network: ip -> "containerId/ifName". */
function fileReservation(node: TestNode, ip: string): string | undefined {
  try {
    return readFileSync(join(node.ipamDir, String(node.config().name), ip), 'utf8').replace('\r\n', '/');
  } catch {
    return undefined;
  }
}

const CHILD_MODES = new Set(['macvlan', 'ipvlan']);

/** A node of `mode` (host-gw, macvlan or ipvlan) on a wire, removed with the scope. */
export function modeNode(scope: Scope, mode: string, tag = ''): ModeNode {
  const up = uplinkNode(scope, tag, mode);
  const base = { mode, node: up.node, wire: up.wire, nodeIp: WIRE.node };
  if (CHILD_MODES.has(mode)) {
    return {
      ...base,
      reachFrom: [up.wire],
      cannotReach: [up.node.name],
      podReaches: WIRE.gateway,
      podAddress: /^198\.18\.0\.(1[01]\d|120)$/, // uplinkNode's range
      config: (extra = {}) => up.config(extra),
      hostIf: () => null,
      podLinkKind: mode,
      reservation: (ip) => fileReservation(up.node, ip),
    };
  }
  if (mode !== 'host-gw' && mode !== 'ipip' && mode !== 'vxlan') throw new Error(`modeNode: no recipe for mode ${mode}`);
  if (mode === 'vxlan') {
    // bpffs (mounted if it was not, unmounted again if it then holds nothing), and this
    // network's pins removed with the node (they outlive its netns)
    scope.defer(ensureBpffs());
    const pins = `${BPFFS}/testcni/${String(up.node.config().name)}`;
    scope.defer(() => removePins(pins));
  }
  // the wire reaches the node's pods through the node, as another node's route would
  inNetns(up.wire, ['ip', 'route', 'add', '10.244.0.0/16', 'via', WIRE.node]);
  return {
    ...base,
    reachFrom: [up.node.name, up.wire],
    cannotReach: [],
    // ipip's gateway 169.254.1.1 is an address nobody holds (proxy ARP answers for it)
    podReaches: mode === 'ipip' ? WIRE.gateway : '10.244.0.1',
    podAddress: /^10\.244\.0\.\d+$/,
    config: (extra = {}) => up.node.config(mode === 'host-gw' ? extra : { mode, ...extra }),
    hostIf: (containerId, ifName = 'eth0') => hostVethName(containerId, ifName),
    podLinkKind: null,
    reservation: (ip) => fileReservation(up.node, ip),
  };
}

/**
 * The first node of a 2-node lab (lab/: underlay, etcd, an agent per node, and for ipip a BIRD
 * per node) as a ModeNode: the network is the conflist its agent wrote (cluster IPAM through
 * it), at cniVersion 1.0.0; a new pod must answer its own node and the other node at once (the
 * other node routes the first one's block: over BGP for ipip). `lab down` with the scope.
 */
export async function labModeNode(mode: string, modeOptions: Record<string, string>, t: { after(fn: () => Promise<void>): void }): Promise<ModeNode> {
  const lab = testLab('lm', mode, modeOptions);
  t.after(() => lab.down());
  const up = await lab.up(2, 0);
  const s = up.state;
  const [n1, n2] = s.nodes as [typeof s.nodes[0], typeof s.nodes[0]];
  const conflist = JSON.parse(readFileSync(join(n1.confDir, readdirSync(n1.confDir)[0]!), 'utf8')) as { name: string; plugins: Record<string, unknown>[] };
  const ipamDir = join(n1.dir, 'no-file-ipam');
  mkdirSync(ipamDir, { recursive: true });
  const node: TestNode = {
    name: n1.netns,
    dir: n1.dir,
    stateDir: n1.stateDir,
    ipamDir,
    config: (extra = {}) => ({ ...conflist.plugins[0], cniVersion: '1.0.0', name: conflist.name, ...extra }),
    cleanup: () => undefined,
  };
  const block = up.statuses.get(n1.name)!.block!;
  const prefix = block.split('.').slice(0, 3).join('\\.');
  return {
    mode,
    node,
    wire: s.underlay.netns,
    nodeIp: n1.underlayIp,
    reachFrom: [n1.netns, n2.netns],
    cannotReach: [],
    podReaches: mode === 'ipip' ? n2.underlayIp : block.replace(/\.0\/\d+$/, '.1'),
    podAddress: new RegExp(`^${prefix}\\.\\d+$`),
    config: node.config,
    hostIf: (containerId, ifName = 'eth0') => hostVethName(containerId, ifName),
    podLinkKind: null,
    reservation: (ip) => Object.entries(etcdHandles(s)).find(([, a]) => a === ip)?.[0],
    lab: s,
  };
}

const probed = new Map<string, boolean>();

/** Whether this kernel can create a link of `type` on a veth (ipvlan, macvlan): tried once, in a
 *  throwaway namespace. */
export function kernelHasLinkType(type: string): boolean {
  const known = probed.get(type);
  if (known !== undefined) return known;
  const ns = `${uniquePrefix('kt')}n`;
  addNetns(ns);
  try {
    inNetns(ns, ['ip', 'link', 'add', 'kp0', 'type', 'veth', 'peer', 'name', 'kp1']);
    const ok = inNetns(ns, ['ip', 'link', 'add', 'kp2', 'link', 'kp0', 'type', type], { allowFail: true }).code === 0;
    probed.set(type, ok);
    return ok;
  } finally {
    delNetns(ns);
  }
}

/** Why a mode's pods cannot run on this kernel, or null when they can. */
export function modeKernelSkipReason(mode: string): string | null {
  if (mode === 'vxlan') return bpfSkipReason(['ethtool', 'mv', 'mkdir', 'rm']);
  if (!CHILD_MODES.has(mode) || kernelHasLinkType(mode)) return null;
  return `this kernel has no ${mode} (\`ip link add … type ${mode}\`: Unknown device type); ${mode} pods are proven in the emulated VM instead (test/e2e/vm-datapath.test.ts)`;
}

/**
 * The node as before/after comparisons see it: its kernel state without the ARP entries on eth0
 * (the test's own traffic across the wire, a lab's agents talking to etcd), the plugin's files in
 * the state dir (journals, locks: an agent's daemons keep files there too, BIRD's growing log
 * among them), and the IPAM dir without its cursor.
 */
export function modeNodeState(m: ModeNode): { node: Record<string, unknown>; state: Record<string, string>; ipam: Record<string, string> } {
  const node = settledNodeState(m.node.name);
  node.neigh = (node.neigh as { dev?: string }[]).filter((n) => n.dev !== 'eth0');
  const pick = (tree: Record<string, string>, keep: (k: string) => boolean) => Object.fromEntries(Object.entries(tree).filter(([k]) => keep(k)));
  return {
    node,
    state: pick(treeSnapshot(m.node.stateDir), (k) => k.startsWith('/journal') || k.startsWith('/locks')),
    ipam: pick(treeSnapshot(m.node.ipamDir), (k) => !k.endsWith('/last_reserved_ip.0')),
  };
}
