// The step builders every mode shares, so a link, an address, a route or a sysctl is created,
// probed and undone the same way whatever the mode. Each returns plain data (pure).
import { HOST, type Ns, type NodeFacts, type Step, type Probe, type Scope, type Pattern } from '../model/plan.ts';
import type { PlanRequest } from './mode.ts';
import { parseCidr } from '../lib/ipv4.ts';

/** Why a pod-side step needs no undo of its own. */
export const GOES_WITH_VETH = 'removed with the veth';

/** "Does a link of this name exist in `ns`?" (answered from /proc in the node's namespace). */
export function linkExistsProbe(facts: NodeFacts, ns: Ns, name: string): Probe {
  return { ns, mech: 'links', argv: [facts.tools.ip, '-j', 'link', 'show'], expect: { $some: { ifname: name } } };
}

function ipStep(facts: NodeFacts, s: Omit<Step, 'mech' | 'argv'> & { args: string[] }): Step {
  const { args, ...rest } = s;
  return { ...rest, mech: 'ip', argv: [facts.tools.ip, ...args] } as Step;
}

/** A per-device IPv4 sysctl key (a dot in the device name is written "/", as sysctl(8) does). */
export function deviceSysctl(dev: string, name: string): string {
  return `net.ipv4.conf.${dev.replace(/\./g, '/')}.${name}`;
}

/**
 * Forwarding as the datapath needs it: the kernel decides per input device, so the devices
 * traffic is routed in through (and `default`, which new devices copy) must forward. A write to
 * `ip_forward` alone can be undone or skipped by the kernel when several processes write it at
 * once, leaving devices at 0: each device is probed and repaired on its own, and written only when
 * its probe says it is off.
 */
export function forwardingSteps(facts: NodeFacts, devices: (string | null)[]): Step[] {
  const why = 'route pod traffic';
  return [
    sysctlStep(facts, HOST, 'node', 'net.ipv4.ip_forward', '1', why),
    sysctlStep(facts, HOST, 'node', deviceSysctl('default', 'forwarding'), '1', 'devices created later copy it'),
    ...devices.filter((d): d is string => d !== null).map((d) => sysctlStep(facts, HOST, 'node', deviceSysctl(d, 'forwarding'), '1', `${why} in from ${d}`)),
  ];
}

/**
 * No ICMP redirects out of `dev` (the kernel sends one when a packet leaves through the device it
 * came in on; whether it does is "all" OR the device's flag, so both are cleared).
 */
export function noRedirectSteps(facts: NodeFacts, dev: string): Step[] {
  const why = `no redirects to pods on ${dev}: their traffic goes through the gateway on purpose`;
  return [
    sysctlStep(facts, HOST, 'node', deviceSysctl('all', 'send_redirects'), '0', why),
    sysctlStep(facts, HOST, 'node', deviceSysctl(dev, 'send_redirects'), '0', why),
  ];
}

export function sysctlStep(facts: NodeFacts, ns: Ns, scope: Scope, key: string, value: string, why: string): Step {
  return {
    id: `sysctl:${ns === HOST ? 'host' : 'pod'}:${key}`,
    kind: 'sysctl.set',
    scope,
    ns,
    mech: 'sysctl',
    key,
    value,
    // -e: a key the kernel lacks (IPv6 disabled) is not an error.
    argv: [facts.tools.sysctl, '-q', '-e', '-w', `${key}=${value}`],
    idempotent: true,
    undo: null,
    undoReason: scope === 'node' ? 'node setting shared by every pod' : 'belongs to the pod netns and goes with it',
    probe: { ns, mech: 'sysctl', key, argv: [facts.tools.sysctl, '-n', '-e', key], expect: { $text: value } },
    describe: `set ${key}=${value} (${why})`,
  };
}

export interface VethSpec {
  /** the pod's netns path; the pod end is created there */
  podNs: Ns;
  podName: string;
  podMac: string;
  hostName: string;
  hostMac: string;
  mtu: number;
}

/** A veth born with each end in place: created in the pod, its peer placed in the node's
 *  namespace through a process that lives there (no move between namespaces). */
export function vethStep(facts: NodeFacts, v: VethSpec): Step {
  const mtu = String(v.mtu);
  return ipStep(facts, {
    id: `link.veth:pod:${v.podName}`,
    kind: 'link.add',
    scope: 'pod',
    ns: v.podNs,
    // [hardening] Names always follow `name`/`dev`: `ip` reads a bare name such as "help", "up"
    // or "type" (or a prefix of a keyword) as a keyword; after `name`/`dev` it is taken as is.
    args: ['link', 'add', 'name', v.podName, 'address', v.podMac, 'mtu', mtu, 'type', 'veth',
      'peer', 'name', v.hostName, 'address', v.hostMac, 'mtu', mtu, 'netns', String(facts.hostPid)],
    idempotent: false,
    undo: { ns: HOST, mech: 'ip', argv: [facts.tools.ip, 'link', 'del', 'dev', v.hostName] },
    probe: linkExistsProbe(facts, HOST, v.hostName),
    describe: `create veth ${v.podName} in the pod with its peer ${v.hostName} on the node (mtu ${mtu})`,
  });
}

export interface StepPlace {
  ns: Ns;
  scope: Scope;
  /** why it needs no undo of its own (pod steps inside the veth, shared node objects) */
  undoReason: string;
}

function where(p: Pick<StepPlace, 'ns'>): string {
  return p.ns === HOST ? 'host' : 'pod';
}

/** An address on a device. `replace`: also fine when it is there already (shared node objects). */
export function addressStep(facts: NodeFacts, p: StepPlace, dev: string, cidr: string, opts: { replace?: boolean; describe?: string } = {}): Step {
  const ip = cidr.split('/')[0]!;
  const prefix = parseCidr(cidr)?.prefix;
  const match: Record<string, Pattern> = opts.replace ? { local: ip } : { local: ip, prefixlen: prefix ?? 32 };
  return ipStep(facts, {
    id: `addr:${where(p)}:${dev}`,
    kind: 'addr.add',
    scope: p.scope,
    ns: p.ns,
    args: ['addr', opts.replace ? 'replace' : 'add', cidr, 'dev', dev],
    idempotent: opts.replace === true,
    undo: null,
    undoReason: p.undoReason,
    probe: { ns: p.ns, mech: 'exec', argv: [facts.tools.ip, '-j', 'addr', 'show', 'dev', dev], expect: { $some: { addr_info: { $some: match } } } },
    describe: opts.describe ?? `address ${cidr} on ${dev}`,
  });
}

export function linkUpStep(facts: NodeFacts, p: StepPlace, dev: string): Step {
  return ipStep(facts, {
    id: `link.up:${where(p)}:${dev}`,
    kind: 'link.set',
    scope: p.scope,
    ns: p.ns,
    args: ['link', 'set', 'dev', dev, 'up'],
    idempotent: true,
    undo: null,
    undoReason: p.undoReason,
    probe: { ns: p.ns, mech: 'exec', argv: [facts.tools.ip, '-j', 'link', 'show', 'dev', dev], expect: { $some: { ifname: dev, flags: { $some: 'UP' } } } },
    describe: `bring ${dev} up`,
  });
}

export interface RouteSpec {
  /** `default` or a CIDR */
  dst: string;
  via?: string;
  dev: string;
  /** `link` for an on-link route to a gateway (no `via`) */
  scope?: 'link';
  /** an id suffix when `dst` alone does not name the route */
  name?: string;
}

/** The kernel prints a host route without "/32": a probe must match what it prints. */
export function shownDst(dst: string): string {
  return dst.endsWith('/32') ? dst.slice(0, -3) : dst;
}

export function routeStep(facts: NodeFacts, p: StepPlace, r: RouteSpec, undo = false): Step {
  const args = ['route', 'add', r.dst, ...(r.via ? ['via', r.via] : []), 'dev', r.dev, ...(r.scope ? ['scope', r.scope] : [])];
  const show = r.dst === 'default' ? ['show', 'default'] : ['show', 'exact', r.dst];
  const match: Record<string, string> = { dst: shownDst(r.dst), dev: r.dev, ...(r.via ? { gateway: r.via } : {}) };
  return ipStep(facts, {
    id: `route:${where(p)}:${r.name ?? r.dst}`,
    kind: 'route.add',
    scope: p.scope,
    ns: p.ns,
    args,
    idempotent: false,
    undo: undo ? { ns: p.ns, mech: 'ip', argv: [facts.tools.ip, 'route', 'del', r.dst, 'dev', r.dev] } : null,
    ...(undo ? {} : { undoReason: p.undoReason }),
    probe: { ns: p.ns, mech: 'exec', argv: [facts.tools.ip, '-j', 'route', ...show], expect: { $some: match } },
    describe: r.via ? `${r.dst === 'default' ? 'default route' : `route ${r.dst}`} via ${r.via}` : `route ${r.dst} on ${r.dev}${r.scope ? ` (scope ${r.scope})` : ''}`,
  });
}

/** A permanent neighbour entry: `ip` answered by `lladdr` on `dev`, no ARP needed. A place
 *  without an undoReason (an entry on a device that outlives the pod) has DEL remove it. */
export function neighbourStep(facts: NodeFacts, p: Omit<StepPlace, 'undoReason'> & { undoReason?: string }, ip: string, lladdr: string, dev: string): Step {
  return ipStep(facts, {
    id: `neigh:${where(p)}:${dev}:${ip}`,
    kind: 'neigh.add',
    scope: p.scope,
    ns: p.ns,
    args: ['neigh', 'replace', ip, 'lladdr', lladdr, 'dev', dev, 'nud', 'permanent'],
    idempotent: true,
    // flush, not del: `ip neigh del` of an absent entry ends a whole -force batch (iproute2 exits)
    ...(p.undoReason === undefined
      ? { undo: { ns: p.ns, mech: 'ip', argv: [facts.tools.ip, 'neigh', 'flush', 'to', ip, 'dev', dev, 'nud', 'permanent'] } }
      : { undo: null, undoReason: p.undoReason }),
    probe: { ns: p.ns, mech: 'neigh', dev, argv: [facts.tools.ip, '-j', 'neigh', 'show', 'dev', dev], expect: { $some: { dst: ip, lladdr } } },
    describe: `neighbour ${ip} is ${lladdr} on ${dev}`,
  });
}

/** SNAT for traffic from the pod leaving the cluster subnet; the rule carries the container
 *  id in a comment, so it can be told apart and removed. Needs the `iptables` tool. */
export function masqueradeStep(req: PlanRequest): Step {
  const podIp = req.lease.address.split('/')[0]!;
  const spec = ['POSTROUTING', '-s', `${podIp}/32`, '!', '-d', req.config.subnet,
    '-m', 'comment', '--comment', `testcni:${req.config.name}:${req.containerId}`.slice(0, 255), '-j', 'MASQUERADE'];
  const ipt = (op: string) => [req.facts.tools.iptables!, '-w', '5', '-t', 'nat', op, ...spec];
  return {
    id: `masq:host:${podIp}`,
    kind: 'iptables.rule',
    scope: 'pod',
    ns: HOST,
    mech: 'exec',
    argv: ipt('-A'),
    idempotent: false,
    undo: { ns: HOST, mech: 'exec', argv: ipt('-D') },
    probe: { ns: HOST, mech: 'exec', argv: ipt('-C'), expect: { $exit: 0 } },
    describe: `masquerade ${podIp} towards destinations outside ${req.config.subnet}`,
  };
}

/**
 * Duplicate address detection off in the pod, for IPv6 attachments only: with DAD on, a new
 * IPv6 address stays tentative for a second. Both "all" and "default" must be 0 before the
 * interface exists. An IPv4 attachment needs neither (and saves the process they cost).
 */
export function podIpv6Steps(req: PlanRequest): Step[] {
  if (!req.lease.address.includes(':')) return [];
  const why = 'no duplicate address detection in the pod';
  return [
    sysctlStep(req.facts, req.netns, 'pod', 'net.ipv6.conf.all.accept_dad', '0', why),
    sysctlStep(req.facts, req.netns, 'pod', 'net.ipv6.conf.default.accept_dad', '0', why),
  ];
}

/** How long ADD waits for the links it made to be operationally up (a bridge's first port can
 *  take a second: the kernel's linkwatch delays non-urgent carrier events). */
export const LINK_UP_TIMEOUT_MS = 3000;

/** Holds the plan until `links` (in the node's namespace) are up, so ADD returns only when the
 *  pod is reachable; CHECK re-reads the first link's state. */
export function waitUpStep(facts: NodeFacts, links: string[]): Step {
  return {
    id: `link.wait:host:${links.join('+')}`,
    kind: 'link.wait',
    scope: 'pod',
    ns: HOST,
    mech: 'wait',
    links,
    timeoutMs: LINK_UP_TIMEOUT_MS,
    idempotent: true,
    undo: null,
    undoReason: 'a wait changes nothing',
    probe: { ns: HOST, mech: 'exec', argv: [facts.tools.ip, '-j', 'link', 'show', 'dev', links[0]!], expect: { $some: { operstate: 'UP' } } },
    describe: `wait until ${links.join(' and ')} ${links.length === 1 ? 'is' : 'are'} up`,
  };
}

export const DEFAULT_MTU = 1500;

/** The pod MTU: configured, else the uplink's less the mode's encapsulation overhead. */
export function podMtu(req: PlanRequest, overhead = 0): number {
  return req.config.mtu ?? (req.facts.uplinkMtu ?? DEFAULT_MTU) - overhead;
}
