// vxlan (Cilium style): pods with /32 addresses behind tc eBPF programs that deliver between the
// node's pods with bpf_redirect_peer and to other nodes through an external VXLAN device, the
// other nodes' blocks in a longest-prefix-match map the agent fills from the registry.
import type { ModeDefinition } from '../../mode.ts';
import { schema, parse, type VxlanConfig } from './config.ts';
import { planAdd, resultOf, podMtu } from './pod.ts';
import { nodePlanner, sweep } from './node.ts';
import { inspector } from './inspect.ts';
import { TOOLS, OBJECT } from './dataplane.ts';

export const vxlan: ModeDefinition<'vxlan', VxlanConfig> = {
  name: 'vxlan',
  summary: 'pods behind tc eBPF programs: bpf_redirect_peer on the node, an external VXLAN device between nodes, remote blocks in an LPM map',
  schema,
  // The original's `"subnet":"10.244.0.0"` meant a /16.
  addressing: { pool: 'block', bareSubnetPrefix: 16 },
  parse,
  tools: (config) => [...TOOLS, ...(config.ipMasq ? ['iptables'] : [])],
  objects: () => [OBJECT],
  planAdd,
  resultOf,
  // The device's MTU follows the underlay's: read it on every ADD, a configured pod `mtu` or not.
  uplinkOf: (config) => config.uplink,
  // An MTU the underlay cannot carry is refused before anything is leased.
  preflight: (req) => void podMtu(req.config, req.facts.uplinkMtu),
  node: nodePlanner,
  gc: sweep,
  inspect: inspector,
  deploy: {
    capabilities: [
      { name: 'NET_ADMIN', why: 'the VXLAN device, its route, tc filters, offloads (ethtool) and the forwarding sysctls' },
      { name: 'BPF', why: 'the maps and programs of the dataplane, and the other nodes\' blocks in its LPM map' },
      { name: 'PERFMON', why: 'without it the verifier refuses the programs: they read the conntrack entry of a flow (struct nf_conn, to leave NATed flows to the stack) and ports past IP options (a variable packet offset)' },
    ],
    hostPaths: (config) => [{
      name: 'bpf', path: (config.modeConfig as VxlanConfig).bpffs, propagation: 'HostToContainer',
      why: 'the pinned maps and programs the plugin on the node uses too (the node mounts bpffs there)',
    }],
    programs: [
      { name: 'bpftool', package: 'bpftool', why: 'loads the programs and fills the maps' },
      { name: 'ethtool', package: 'ethtool', why: 'the VXLAN device\'s checksum offload' },
    ],
    netSysctls: 'forwarding on the uplink (node plan)',
    unchainable: {
      bandwidth: 'its egress shaping needs the host veth\'s ingress hook, which vxlan\'s tc programs hold (clsact: "create ingress qdisc: file exists"), and its ingress tbf is bypassed by bpf_redirect_peer for traffic from other pods and nodes',
    },
  },
  labUnsupported: null,
};
