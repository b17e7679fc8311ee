// host-gw pods: each pod hangs off the node bridge that carries its block's gateway, through a
// veth born with its ends in place, with an address from the block and a default route.
import { HOST, type Step } from '../../../model/plan.ts';
import type { Result } from '../../../model/result.ts';
import type { PlanRequest } from '../../mode.ts';
import { hostVethName, podMac, hostVethMac, bridgeMac } from '../../names.ts';
import {
  linkExistsProbe, sysctlStep, vethStep, addressStep, linkUpStep, routeStep, masqueradeStep, podMtu, GOES_WITH_VETH,
} from '../../steps.ts';
import { parseCidr } from '../../../lib/ipv4.ts';
import type { HostGwConfig } from './config.ts';

type Req = PlanRequest<HostGwConfig>;

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
    sysctlStep(facts, HOST, 'node', 'net.ipv4.ip_forward', '1', 'route pod traffic'),
    // Both "all" and "default" must be 0 before the interface exists for DAD to stay off on it.
    sysctlStep(facts, req.netns, 'pod', 'net.ipv6.conf.all.accept_dad', '0', 'no duplicate address detection in the pod'),
    sysctlStep(facts, req.netns, 'pod', 'net.ipv6.conf.default.accept_dad', '0', 'no duplicate address detection in the pod'),
    vethStep(facts, {
      podNs: req.netns, podName: ifName, podMac: podMac(containerId, ifName),
      hostName: host, hostMac: hostVethMac(containerId, ifName), mtu: podMtu(req),
    }),
    addressStep(facts, pod, ifName, req.lease.address),
    linkUpStep(facts, pod, ifName),
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
    ips: [{ address: req.lease.address, gateway: req.lease.gateway, interface: 2 }],
    routes: [{ dst: '0.0.0.0/0', gw: req.lease.gateway }],
    dns: {},
  };
}
