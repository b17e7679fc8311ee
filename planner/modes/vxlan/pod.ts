// vxlan pods: a veth with a derived host name, the pod's address as a /32, the gateway (the
// block's first address, held by the node's VXLAN device) as a permanent neighbour at the host
// veth's MAC (no ARP), a host route to the pod through its veth (the node and Services reach
// it), tcni_from_pod on the veth's ingress and the pod's endpoint entry. Before them, what the
// node must hold (ensured with in-process probes: nothing runs once the node is set up, except
// what is cheaper to repeat in a batch that runs anyway), so one node with file IPAM and no
// agent works.
import { HOST, type Step } from '../../../model/plan.ts';
import type { Result } from '../../../model/result.ts';
import type { PlanRequest } from '../../mode.ts';
import { hostVethName, podMac, hostVethMac } from '../../names.ts';
import {
  vethStep, addressStep, linkUpStep, routeStep, neighbourStep, masqueradeStep, waitUpStep, forwardingSteps, podIpv6Steps,
  GOES_WITH_VETH, DEFAULT_MTU,
} from '../../steps.ts';
import { badField } from '../../config-fields.ts';
import { parseCidr, formatCidr } from '../../../lib/ipv4.ts';
import type { NetworkConfig } from '../../../model/config.ts';
import { VXLAN_OVERHEAD, type VxlanConfig } from './config.ts';
import {
  nodeDataplane, nodeEnsureSteps, deviceSteps, deviceFilterSteps, configStep, podFilterSteps, endpointStep,
  type NodeDataplane,
} from './dataplane.ts';

type Req = PlanRequest<VxlanConfig>;

/** The MTU of the VXLAN device: configured, else the underlay's less the encapsulation. It may
 *  not be above what the underlay carries (code 7 naming the field). */
export function deviceMtu(config: NetworkConfig<string, VxlanConfig>, underlayMtu: number | null): number {
  const v = config.modeConfig;
  const max = (underlayMtu ?? DEFAULT_MTU) - VXLAN_OVERHEAD;
  if (v.mtu !== null && underlayMtu !== null && v.mtu > max) {
    badField('vxlan.mtu', `${v.mtu} is above what the underlay carries (${underlayMtu} less ${VXLAN_OVERHEAD} of VXLAN headers: ${max})`);
  }
  return v.mtu ?? max;
}

/** The pods' MTU: the network's `mtu`, else the device's; never above the device's. */
export function podMtu(config: NetworkConfig<string, VxlanConfig>, underlayMtu: number | null): number {
  const dev = deviceMtu(config, underlayMtu);
  if (config.mtu !== null && config.mtu > dev) {
    badField('mtu', `${config.mtu} is above the VXLAN device's ${dev}${config.modeConfig.mtu === null ? ` (the underlay's ${underlayMtu ?? DEFAULT_MTU} less ${VXLAN_OVERHEAD})` : ''}`);
  }
  return config.mtu ?? dev;
}

/** The node's block, from the lease (its prefix is the block's). */
function blockOf(req: Req): string {
  const c = parseCidr(req.lease.address);
  return c ? formatCidr(c) : req.config.ipam.block;
}

export function dataplaneOf(req: Pick<Req, 'config' | 'facts' | 'lease'>): NodeDataplane {
  const block = blockOf(req as Req);
  return nodeDataplane(req.config, req.facts, block, req.lease.gateway, deviceMtu(req.config, req.facts.uplinkMtu));
}

function podIp(req: Req): string {
  return req.lease.address.split('/')[0]!;
}

export function planAdd(req: Req): Step[] {
  const { facts, ifName, containerId } = req;
  const n = dataplaneOf(req);
  const mtu = podMtu(req.config, facts.uplinkMtu);
  const gateway = req.lease.gateway;
  const host = hostVethName(containerId, ifName);
  const hostMac = hostVethMac(containerId, ifName);
  const pod = { ns: req.netns, scope: 'pod' as const, undoReason: GOES_WITH_VETH };
  const hostSide = { ns: HOST, scope: 'pod' as const, undoReason: GOES_WITH_VETH };
  const ip = podIp(req);
  const steps: Step[] = [
    ...forwardingSteps(facts, [facts.uplink]),
    ...podIpv6Steps(req),
    // A new VXLAN device offloads tx checksums: ADD sets the offload only to turn it off (the one
    // node setting it repeats, as no file shows it); the agent's node plan checks it either way.
    ...nodeEnsureSteps(n).filter((s) => !(s.id.startsWith('ethtool:') && n.txChecksumOffload.on)),
    vethStep(facts, { podNs: req.netns, podName: ifName, podMac: podMac(containerId, ifName), hostName: host, hostMac, mtu }),
    addressStep(facts, pod, ifName, `${ip}/32`),
    linkUpStep(facts, pod, ifName),
    neighbourStep(facts, pod, gateway, hostMac, ifName),
    routeStep(facts, pod, { dst: `${gateway}/32`, dev: ifName, scope: 'link', name: 'gateway' }),
    routeStep(facts, pod, { dst: 'default', via: gateway, dev: ifName }),
    // One node `ip` batch: the device's address and state (cheaper to repeat than to probe),
    // then the pod's veth and host route.
    ...deviceSteps(n),
    linkUpStep(facts, hostSide, host),
    routeStep(facts, hostSide, { dst: `${ip}/32`, dev: host }),
    // One `tc` batch: the device's filters (a newer build's programs replace the old ones here),
    // then the pod's.
    ...deviceFilterSteps(n),
    ...podFilterSteps(n, host),
    // One `bpftool` batch: the node's config entry, then the pod's endpoint.
    configStep(n),
    endpointStep(n, { ip, hostVeth: host, podMac: podMac(containerId, ifName), hostMac }),
    waitUpStep(facts, [host]),
  ];
  if (req.config.ipMasq) steps.push(masqueradeStep(req));
  return steps;
}

export function resultOf(req: Req): Result {
  const { containerId, ifName } = req;
  const mtu = podMtu(req.config, req.facts.uplinkMtu);
  return {
    interfaces: [
      { name: hostVethName(containerId, ifName), mac: hostVethMac(containerId, ifName), mtu },
      { name: ifName, mac: podMac(containerId, ifName), mtu, sandbox: req.netns },
    ],
    ips: [{ address: `${podIp(req)}/32`, gateway: req.lease.gateway, interface: 1 }],
    routes: [{ dst: `${req.lease.gateway}/32` }, { dst: '0.0.0.0/0', gw: req.lease.gateway }],
    dns: {},
  };
}
