// host-gw pods: each pod hangs off the node bridge that carries its block's gateway, through a
// veth born with its ends in place, with an address from the block and a default route.
//
// The pod's address is a /32 with an on-link route to the gateway: everything, other pods of the
// node included, goes through the gateway, so a pod holds one neighbour entry instead of one per
// peer. The kernel's neighbour table is shared by every namespace and refuses new entries past
// gc_thresh3 (1024 by default): with on-link /24s, pods talking to each other fill it at a few
// dozen pods per node and new neighbours are silently dropped. Pod-to-pod traffic of one node
// enters and leaves the node through the bridge, so the node would answer it with ICMP redirects
// towards the peer, which pods accept (shared_media) and which would bring the per-peer entries
// back: the bridge sends none (noRedirectSteps).
//
// The node's entry for the pod on the bridge is written by ADD (permanent, the pod's derived MAC)
// and removed by DEL: an address is handed out again after its pod is gone, and an entry left on
// the bridge with the old pod's MAC (still REACHABLE, or refreshed within the kernel's locktime)
// would send the new pod's traffic nowhere for seconds.
import { HOST, type Step } from '../../../model/plan.ts';
import type { Result } from '../../../model/result.ts';
import type { PlanRequest } from '../../mode.ts';
import { hostVethName, podMac, hostVethMac, bridgeMac } from '../../names.ts';
import {
  linkExistsProbe, sysctlStep, vethStep, addressStep, linkUpStep, routeStep, masqueradeStep, waitUpStep, podMtu, GOES_WITH_VETH,
  forwardingSteps, deviceSysctl, podIpv6Steps, noRedirectSteps, neighbourStep,
} from '../../steps.ts';
import { parseCidr } from '../../../lib/ipv4.ts';
import type { HostGwConfig } from './config.ts';

type Req = PlanRequest<HostGwConfig>;

/** The pod's own address: a host address, whatever the block's prefix. */
function podAddress(req: Req): string {
  return `${req.lease.address.split('/')[0]}/32`;
}

function gatewayCidr(req: Req): string {
  const prefix = parseCidr(req.lease.address)!.prefix;
  return `${req.lease.gateway}/${prefix}`;
}

/** Pod side first, then one node batch: the host end is enslaved once it exists. */
export function planAdd(req: Req): Step[] {
  const { facts, ifName, containerId } = req;
  const pod = { ns: req.netns, scope: 'pod' as const, undoReason: GOES_WITH_VETH };
  const shared = (why: string) => ({ ns: HOST, scope: 'node' as const, undoReason: why });
  const host = hostVethName(containerId, ifName);
  const { bridge } = req.config.modeConfig;
  const steps: Step[] = [
    // Pods come in through the bridge and other nodes through the uplink (the bridge's own
    // forwarding follows once it exists).
    ...forwardingSteps(facts, [facts.uplink]),
    ...podIpv6Steps(req),
    vethStep(facts, {
      podNs: req.netns, podName: ifName, podMac: podMac(containerId, ifName),
      hostName: host, hostMac: hostVethMac(containerId, ifName), mtu: podMtu(req),
    }),
    addressStep(facts, pod, ifName, podAddress(req)),
    linkUpStep(facts, pod, ifName),
    routeStep(facts, pod, { dst: `${req.lease.gateway}/32`, dev: ifName, scope: 'link', name: 'gateway' }),
    routeStep(facts, pod, { dst: 'default', via: req.lease.gateway, dev: ifName }),
    {
      id: `link.bridge:host:${bridge}`,
      kind: 'link.add',
      scope: 'node',
      ns: HOST,
      mech: 'ip',
      argv: [facts.tools.ip, 'link', 'add', 'name', bridge, 'address', bridgeMac(bridge, gatewayCidr(req)), 'type', 'bridge'],
      idempotent: false,
      undo: null,
      undoReason: 'node bridge shared by every pod',
      probe: linkExistsProbe(facts, HOST, bridge),
      describe: `ensure bridge ${bridge}`,
    },
    addressStep(facts, shared('pod gateway shared by every pod'), bridge, gatewayCidr(req), { replace: true, describe: `gateway ${gatewayCidr(req)} on ${bridge}` }),
    linkUpStep(facts, shared('node bridge shared by every pod'), bridge),
    {
      id: `link.master:host:${host}`,
      kind: 'link.set',
      scope: 'pod',
      ns: HOST,
      mech: 'ip',
      argv: [facts.tools.ip, 'link', 'set', 'dev', host, 'master', bridge, 'up'],
      idempotent: true,
      undo: null,
      undoReason: GOES_WITH_VETH,
      probe: { ns: HOST, mech: 'exec', argv: [facts.tools.ip, '-j', 'link', 'show', 'dev', host], expect: { $some: { master: bridge, flags: { $some: 'UP' } } } },
      describe: `attach ${host} to ${bridge} and bring it up`,
    },
    {
      // A pod's connection to a Service or hostPort that the node DNATs back to the same pod
      // leaves through the port it came in by (the node bridges it back under br_netfilter):
      // without hairpin the bridge drops it.
      id: `link.hairpin:host:${host}`,
      kind: 'link.set',
      scope: 'pod',
      ns: HOST,
      mech: 'ip',
      argv: [facts.tools.ip, 'link', 'set', 'dev', host, 'type', 'bridge_slave', 'hairpin', 'on'],
      idempotent: true,
      undo: null,
      undoReason: GOES_WITH_VETH,
      probe: { ns: HOST, mech: 'exec', argv: [facts.tools.ip, '-d', '-j', 'link', 'show', 'dev', host], expect: { $some: { linkinfo: { info_slave_data: { hairpin: true } } } } },
      describe: `hairpin on ${host}, so the pod reaches itself through the node`,
    },
    neighbourStep(facts, { ns: HOST, scope: 'pod' }, podAddress(req).split('/')[0]!, podMac(containerId, ifName), bridge),
    sysctlStep(facts, HOST, 'node', deviceSysctl(bridge, 'forwarding'), '1', `route pod traffic in from ${bridge}`),
    ...noRedirectSteps(facts, bridge),
    waitUpStep(facts, [host, bridge]),
  ];
  if (req.config.ipMasq) steps.push(masqueradeStep(req));
  return steps;
}

export function resultOf(req: Req): Result {
  const { containerId, ifName } = req;
  const { bridge } = req.config.modeConfig;
  const mtu = podMtu(req);
  return {
    interfaces: [
      { name: bridge, mac: bridgeMac(bridge, gatewayCidr(req)) },
      { name: hostVethName(containerId, ifName), mac: hostVethMac(containerId, ifName), mtu },
      { name: ifName, mac: podMac(containerId, ifName), mtu, sandbox: req.netns },
    ],
    ips: [{ address: podAddress(req), gateway: req.lease.gateway, interface: 2 }],
    routes: [{ dst: `${req.lease.gateway}/32` }, { dst: '0.0.0.0/0', gw: req.lease.gateway }],
    dns: {},
  };
}
