// ipip pods (Calico style): the pod's address is a /32 and its default route goes via
// 169.254.1.1, a link-local address nobody holds: the host side of the veth answers for it (proxy
// ARP, no delay) and the pod also holds it as a permanent neighbour (the host veth's MAC), so the
// first packet needs no ARP at all and a node without a default route (which proxy ARP needs to
// answer) still works. The node routes the pod's /32 to the host veth; other nodes reach the
// pod through the block route BIRD installs there (through the tunnel, or plainly routed).
import { HOST, type Step } from '../../../model/plan.ts';
import type { Result } from '../../../model/result.ts';
import type { PlanRequest } from '../../mode.ts';
import { hostVethName, podMac, hostVethMac } from '../../names.ts';
import {
  sysctlStep, vethStep, addressStep, linkUpStep, routeStep, neighbourStep, masqueradeStep, waitUpStep, podMtu, GOES_WITH_VETH,
  forwardingSteps, deviceSysctl, podIpv6Steps,
} from '../../steps.ts';
import { encapsulates, IPIP_OVERHEAD, type IpipConfig } from './config.ts';

type Req = PlanRequest<IpipConfig>;

/** The pods' gateway: link-local, answered by the host veth; the same on every node. */
export const POD_GATEWAY = '169.254.1.1';

function podAddress(req: Req): string {
  return `${req.lease.address.split('/')[0]}/32`;
}

function mtuOf(req: Req): number {
  return podMtu(req, encapsulates(req.config.modeConfig.bgp) ? IPIP_OVERHEAD : 0);
}

/** A neighbour-table sysctl of a device (net.ipv4.neigh.DEV.KEY). */
function neighSysctl(dev: string, name: string): string {
  return `net.ipv4.neigh.${dev.replace(/\./g, '/')}.${name}`;
}

/** Pod side in one batch (born in the pod), then the host side: answer for the gateway, route. */
export function planAdd(req: Req): Step[] {
  const { facts, ifName, containerId } = req;
  const pod = { ns: req.netns, scope: 'pod' as const, undoReason: GOES_WITH_VETH };
  const hostSide = { ns: HOST, scope: 'pod' as const, undoReason: GOES_WITH_VETH };
  const host = hostVethName(containerId, ifName);
  const hostMac = hostVethMac(containerId, ifName);
  const onVeth = (s: Step): Step => ({ ...s, undoReason: GOES_WITH_VETH });
  const steps: Step[] = [
    // Pods' traffic comes in through their veths (which copy `default`) and other nodes' through
    // the uplink; the tunnel device's own flag is the node plan's (the agent creates it).
    ...forwardingSteps(facts, [facts.uplink]),
    ...podIpv6Steps(req),
    vethStep(facts, { podNs: req.netns, podName: ifName, podMac: podMac(containerId, ifName), hostName: host, hostMac, mtu: mtuOf(req) }),
    addressStep(facts, pod, ifName, podAddress(req)),
    linkUpStep(facts, pod, ifName),
    neighbourStep(facts, pod, POD_GATEWAY, hostMac, ifName),
    routeStep(facts, pod, { dst: `${POD_GATEWAY}/32`, dev: ifName, scope: 'link', name: 'gateway' }),
    routeStep(facts, pod, { dst: 'default', via: POD_GATEWAY, dev: ifName }),
    onVeth(sysctlStep(facts, HOST, 'pod', deviceSysctl(host, 'proxy_arp'), '1', `${host} answers ARP for ${POD_GATEWAY}`)),
    onVeth(sysctlStep(facts, HOST, 'pod', neighSysctl(host, 'proxy_delay'), '0', 'answer at once, not after up to 0.8 s')),
    linkUpStep(facts, hostSide, host),
    routeStep(facts, hostSide, { dst: podAddress(req), dev: host, scope: 'link' }),
    waitUpStep(facts, [host]),
  ];
  if (req.config.ipMasq) steps.push(masqueradeStep(req));
  return steps;
}

export function resultOf(req: Req): Result {
  const { containerId, ifName } = req;
  const mtu = mtuOf(req);
  return {
    interfaces: [
      { name: hostVethName(containerId, ifName), mac: hostVethMac(containerId, ifName), mtu },
      { name: ifName, mac: podMac(containerId, ifName), mtu, sandbox: req.netns },
    ],
    ips: [{ address: podAddress(req), gateway: POD_GATEWAY, interface: 1 }],
    routes: [{ dst: `${POD_GATEWAY}/32` }, { dst: '0.0.0.0/0', gw: POD_GATEWAY }],
    dns: {},
  };
}
