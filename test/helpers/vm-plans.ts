// Hand-written stand-ins for the plans the ipip mode will render with
// `testcni plan --dry-run --format sh`, in the same shape as planner/render.ts's sh output:
// absolute tool paths, pod steps entered with `nsenter --net=PATH --`, the node's netns named
// by "$$" (the script's own shell), shared node objects tolerated when already there. The VM
// tests run them inside a node's netns; once the modes exist, their rendered plans replace these.
const IP = '/usr/sbin/ip';
const SYSCTL = '/usr/sbin/sysctl';
const NSENTER = '/usr/bin/nsenter';

function script(title: string, lines: [describe: string, command: string][]): string {
  const body = lines.flatMap(([d, c]) => [`# ${d}`, c]);
  return ['#!/bin/sh', `# ${title}`, '# Plan: hand-written stand-in for a rendered plan.', 'set -eu', ...body].join('\n') + '\n';
}

function inPod(netns: string, command: string): string {
  return `${NSENTER} --net=${netns} -- ${command}`;
}

export interface IpipNode {
  name: string;
  /** this node's block, e.g. 10.244.1.0/24 */
  block: string;
  /** the tunnel's own address (the block's first), the source of node -> remote pod traffic */
  tunnelAddress: string;
  /** underlay MTU - 20 */
  tunnelMtu: number;
}

/** ipip node plan: tunl0 (the ipip module's fallback device, so "ensure"), its MTU and address, the block's blackhole. */
export function ipipNodePlan(n: IpipNode): string {
  return script(`testcni node plan for ${n.name} (mode ipip)`, [
    ['set net.ipv4.ip_forward=1 (route pod traffic)', `${SYSCTL} -q -e -w net.ipv4.ip_forward=1`],
    ['ensure the IPIP tunnel tunl0', `${IP} link add tunl0 type ipip 2>/dev/null || echo 'already in place: link.ipip:host:tunl0'`],
    [`tunl0 mtu ${n.tunnelMtu} (underlay - 20), up`, `${IP} link set tunl0 mtu ${n.tunnelMtu} up`],
    [`tunnel address ${n.tunnelAddress}/32 on tunl0`, `${IP} addr replace ${n.tunnelAddress}/32 dev tunl0`],
    [`blackhole ${n.block} (this node's block; pods have /32 routes)`, `${IP} route replace blackhole ${n.block} proto 151`],
  ]);
}

export interface PeerBlock {
  block: string;
  /** the owning node's underlay address */
  via: string;
  /** through tunl0 (ipipMode always, or crossSubnet towards another subnet) or plain */
  encapsulate: boolean;
}

/**
 * The routes BIRD's kernel protocol installs for other nodes' blocks (proto bird): through
 * the tunnel it sets `ifname = "tunl0"; onlink = true;`, otherwise the plain BGP next hop.
 */
export function birdKernelRoutes(node: string, peers: PeerBlock[]): string {
  return script(`routes BIRD installs on ${node} (stand-in for its kernel protocol)`, peers.map((p) => [
    `${p.block} via ${p.via}${p.encapsulate ? ' through tunl0' : ''}`,
    `${IP} route replace ${p.block} via ${p.via} dev ${p.encapsulate ? 'tunl0 onlink' : 'eth0'} proto bird`,
  ]));
}

export interface IpipPod {
  containerId: string;
  /** the pod netns path, as CNI_NETNS */
  netns: string;
  hostVeth: string;
  /** the pod's address, e.g. 10.244.1.10 (a /32) */
  address: string;
  mtu: number;
}

/** ipip pod plan (Calico style): /32 on eth0, default via 169.254.1.1 answered by proxy ARP. */
export function ipipPodPlan(p: IpipPod): string {
  const h = p.hostVeth;
  return script(`testcni ADD eth0 (container ${p.containerId}, network testcni, mode ipip)`, [
    [`create veth eth0 in the pod with its peer ${h} on the node (mtu ${p.mtu})`,
      inPod(p.netns, `${IP} link add eth0 mtu ${p.mtu} type veth peer name ${h} mtu ${p.mtu} netns "$$"`)],
    [`address ${p.address}/32 on eth0`, inPod(p.netns, `${IP} addr add ${p.address}/32 dev eth0`)],
    ['bring eth0 up', inPod(p.netns, `${IP} link set eth0 up`)],
    ['link-scope route to the gateway 169.254.1.1', inPod(p.netns, `${IP} route add 169.254.1.1 dev eth0 scope link`)],
    ['default route via 169.254.1.1', inPod(p.netns, `${IP} route add default via 169.254.1.1 dev eth0`)],
    [`proxy ARP on ${h} (answers for 169.254.1.1)`, `${SYSCTL} -q -e -w net.ipv4.conf.${h}.proxy_arp=1`],
    [`no proxy ARP delay on ${h}`, `${SYSCTL} -q -e -w net.ipv4.neigh.${h}.proxy_delay=0`],
    [`bring ${h} up`, `${IP} link set ${h} up`],
    [`host route ${p.address}/32 via ${h}`, `${IP} route add ${p.address}/32 dev ${h} scope link`],
  ]);
}
