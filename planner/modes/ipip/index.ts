// ipip (Calico style, BGP): pods routed as /32s behind 169.254.1.1; each node announces its block
// over BGP with BIRD, run by the agent from this mode's node plan, and reaches the other nodes'
// blocks through the IPIP tunnel (ipipMode always), only across underlay subnets (crossSubnet),
// or plainly routed (never).
import type { ModeDefinition } from '../../mode.ts';
import { IPIP_MODES } from '../../bird/view.ts';
import { schema, parse, type IpipConfig } from './config.ts';
import { planAdd, resultOf } from './pod.ts';
import { nodePlanner } from './node.ts';

/** BGP timers of `testcni lab`: every node on one bridge, sessions up in about a second
 *  (machine-notes), a dead peer noticed in 9 s. */
export const LAB_TIMERS = { holdTime: 9, keepaliveTime: 3, connectDelayTime: 1, connectRetryTime: 2, errorWaitTime: [1, 5] };

export const ipip: ModeDefinition<'ipip', IpipConfig> = {
  name: 'ipip',
  summary: 'pods routed as /32s behind 169.254.1.1; each node announces its block over BGP (BIRD) and reaches the others through an IPIP tunnel, or plainly (`bgp.ipipMode`)',
  schema,
  addressing: { pool: 'block' },
  parse,
  tools: (config) => (config.ipMasq ? ['iptables'] : []),
  planAdd,
  resultOf,
  node: nodePlanner,
  deploy: {
    capabilities: [
      { name: 'NET_ADMIN', why: 'the blackhole of the node\'s block, the tunnel, the forwarding sysctls, and BIRD\'s kernel routes' },
      { name: 'NET_BIND_SERVICE', why: 'BIRD listens for BGP on TCP port 179' },
    ],
    programs: [{ name: 'bird', package: 'bird2', why: 'the agent runs BIRD for BGP (bird, birdc)' }],
    netSysctls: 'forwarding on the uplink and the tunnel (node plan)',
  },
  labUnsupported: null,
  lab: {
    flags: [{ name: 'ipip-mode', values: IPIP_MODES, default: 'always', description: 'bgp.ipipMode of the nodes: always, crossSubnet or never (plain routing, no tunnel)' }],
    networkConfig: (v) => ({ bgp: { ipipMode: v['ipip-mode'], timers: LAB_TIMERS } }),
    linkTypes: (v) => (v['ipip-mode'] === 'never' ? [] : [{ type: 'ipip', why: `ipipMode ${v['ipip-mode']} sends pod traffic through the kernel's IPIP tunnel device` }]),
  },
};
