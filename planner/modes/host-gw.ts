// host-gw: pods hang off a node bridge that carries the block gateway; each pod gets a veth
// (born with its ends in place), an address from the node's block and a default route.
import { HOST, type PlanRequest, type Step } from '../types.ts';
import type { Result } from '../../cni/result.ts';
import { hostVethName, podMac, hostVethMac, bridgeMac } from '../names.ts';
import { linkExistsProbe, sysctlStep } from '../steps.ts';
import { parseCidr } from '../../lib/ipv4.ts';

export const DEFAULT_MTU = 1500;

export function mtuOf(req: PlanRequest): number {
  return req.config.mtu ?? req.facts.uplinkMtu ?? DEFAULT_MTU;
}

function gatewayCidr(req: PlanRequest): string {
  const prefix = parseCidr(req.lease.address)!.prefix;
  return `${req.lease.gateway}/${prefix}`;
}

/** Pod side first, then one host batch: the host end is enslaved once it exists. */
export function planAdd(req: PlanRequest): Step[] {
  const { facts, config, ifName, containerId } = req;
  const ip = facts.tools.ip;
  const pod = req.netns;
  const host = hostVethName(containerId, ifName);
  const bridge = config.bridge;
  const mtu = String(mtuOf(req));
  const gw = req.lease.gateway;
  const withVeth = 'removed with the veth';
  const steps: Step[] = [
    sysctlStep(facts, HOST, 'node', 'net.ipv4.ip_forward', '1', 'route pod traffic'),
    // Both "all" and "default" must be 0 before the interface exists for DAD to stay off on it.
    sysctlStep(facts, pod, 'pod', 'net.ipv6.conf.all.accept_dad', '0', 'no duplicate address detection in the pod'),
    sysctlStep(facts, pod, 'pod', 'net.ipv6.conf.default.accept_dad', '0', 'no duplicate address detection in the pod'),
    {
      id: `link.veth:pod:${ifName}`,
      kind: 'link.add',
      scope: 'pod',
      ns: pod,
      argv: [ip, 'link', 'add', ifName, 'address', podMac(containerId, ifName), 'mtu', mtu, 'type', 'veth',
        'peer', 'name', host, 'address', hostVethMac(containerId, ifName), 'mtu', mtu, 'netns', String(facts.hostPid)],
      idempotent: false,
      undo: { ns: HOST, argv: [ip, 'link', 'del', host] },
      probe: linkExistsProbe(facts, HOST, host),
      describe: `create veth ${ifName} in the pod with its peer ${host} on the node (mtu ${mtu})`,
    },
    {
      id: `addr:pod:${ifName}`,
      kind: 'addr.add',
      scope: 'pod',
      ns: pod,
      argv: [ip, 'addr', 'add', req.lease.address, 'dev', ifName],
      idempotent: false,
      undo: null,
      undoReason: withVeth,
      probe: { ns: pod, argv: [ip, '-j', 'addr', 'show', 'dev', ifName], expect: { $some: { addr_info: { $some: { local: req.lease.address.split('/')[0]!, prefixlen: parseCidr(req.lease.address)!.prefix } } } } },
      describe: `address ${req.lease.address} on ${ifName}`,
    },
    {
      id: `link.up:pod:${ifName}`,
      kind: 'link.set',
      scope: 'pod',
      ns: pod,
      argv: [ip, 'link', 'set', ifName, 'up'],
      idempotent: true,
      undo: null,
      undoReason: withVeth,
      probe: { ns: pod, argv: [ip, '-j', 'link', 'show', 'dev', ifName], expect: { $some: { ifname: ifName, flags: { $some: 'UP' } } } },
      describe: `bring ${ifName} up`,
    },
    {
      id: `route:pod:default`,
      kind: 'route.add',
      scope: 'pod',
      ns: pod,
      argv: [ip, 'route', 'add', 'default', 'via', gw, 'dev', ifName],
      idempotent: false,
      undo: null,
      undoReason: withVeth,
      probe: { ns: pod, argv: [ip, '-j', 'route', 'show', 'default'], expect: { $some: { dst: 'default', gateway: gw, dev: ifName } } },
      describe: `default route via ${gw}`,
    },
    {
      id: `link.bridge:host:${bridge}`,
      kind: 'link.add',
      scope: 'node',
      ns: HOST,
      argv: [ip, 'link', 'add', bridge, 'address', bridgeMac(bridge, gatewayCidr(req)), 'type', 'bridge'],
      idempotent: false,
      undo: null,
      undoReason: 'node bridge shared by every pod',
      probe: linkExistsProbe(facts, HOST, bridge),
      describe: `ensure bridge ${bridge}`,
    },
    {
      id: `addr:host:${bridge}`,
      kind: 'addr.add',
      scope: 'node',
      ns: HOST,
      argv: [ip, 'addr', 'replace', gatewayCidr(req), 'dev', bridge],
      idempotent: true,
      undo: null,
      undoReason: 'pod gateway shared by every pod',
      probe: { ns: HOST, argv: [ip, '-j', 'addr', 'show', 'dev', bridge], expect: { $some: { addr_info: { $some: { local: gw } } } } },
      describe: `gateway ${gatewayCidr(req)} on ${bridge}`,
    },
    {
      id: `link.up:host:${bridge}`,
      kind: 'link.set',
      scope: 'node',
      ns: HOST,
      argv: [ip, 'link', 'set', bridge, 'up'],
      idempotent: true,
      undo: null,
      undoReason: 'node bridge shared by every pod',
      probe: { ns: HOST, argv: [ip, '-j', 'link', 'show', 'dev', bridge], expect: { $some: { flags: { $some: 'UP' } } } },
      describe: `bring ${bridge} up`,
    },
    {
      id: `link.master:host:${host}`,
      kind: 'link.set',
      scope: 'pod',
      ns: HOST,
      argv: [ip, 'link', 'set', host, 'master', bridge, 'up'],
      idempotent: true,
      undo: null,
      undoReason: withVeth,
      probe: { ns: HOST, argv: [ip, '-j', 'link', 'show', 'dev', host], expect: { $some: { master: bridge, flags: { $some: 'UP' } } } },
      describe: `attach ${host} to ${bridge} and bring it up`,
    },
  ];
  if (config.ipMasq) steps.push(masqStep(req));
  return steps;
}

/** SNAT for traffic leaving the cluster subnet, tagged so it can be found and removed. */
function masqStep(req: PlanRequest): Step {
  const podIp = req.lease.address.split('/')[0]!;
  const spec = ['POSTROUTING', '-s', `${podIp}/32`, '!', '-d', req.config.subnet,
    '-m', 'comment', '--comment', `testcni:${req.config.name}:${req.containerId}`.slice(0, 255), '-j', 'MASQUERADE'];
  const ipt = (op: string) => [req.facts.tools.iptables, '-w', '5', '-t', 'nat', op, ...spec];
  return {
    id: `masq:host:${podIp}`,
    kind: 'iptables.rule',
    scope: 'pod',
    ns: HOST,
    argv: ipt('-A'),
    idempotent: false,
    undo: { ns: HOST, argv: ipt('-D') },
    probe: { ns: HOST, argv: ipt('-C'), expect: { $exit: 0 } },
    describe: `masquerade ${podIp} towards destinations outside ${req.config.subnet}`,
  };
}

export function resultOf(req: PlanRequest): Result {
  const { containerId, ifName, config } = req;
  const mtu = mtuOf(req);
  return {
    interfaces: [
      { name: config.bridge, mac: bridgeMac(config.bridge, gatewayCidr(req)) },
      { name: hostVethName(containerId, ifName), mac: hostVethMac(containerId, ifName), mtu },
      { name: ifName, mac: podMac(containerId, ifName), mtu, sandbox: req.netns },
    ],
    ips: [{ address: req.lease.address, gateway: req.lease.gateway, interface: 2 }],
    routes: [{ dst: '0.0.0.0/0', gw: req.lease.gateway }],
    dns: {},
  };
}
