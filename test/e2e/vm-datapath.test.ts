// The ipip and ipvlan datapaths, proven in an emulated VM (this machine's kernel has neither
// device; see test/helpers/vm.ts). Each scenario is one job of a single boot: it builds an
// underlay, runs node and pod plans inside the node netns as the plugin would (rendered plans:
// the golden host-gw one and ipvlan's as testcni compiles them; hand-written stand-ins in
// rendered form for ipip, test/helpers/vm-plans.ts), pings, and reports "RESULT key value"
// lines that the assertions below read.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/netns.ts';
import { runJobsInVm, vmSkipReason, vmToolSkipReason, type VmJob, type VmRun, type VmJobResult } from '../helpers/vm.ts';
import { FAST_TIMERS } from '../helpers/bgp.ts';
import { birdView, type BirdNode } from '../../planner/bird/view.ts';
import { renderBirdConf } from '../../planner/bird/render.ts';
import { birdKernelRoutes, ipipNodePlan, ipipPodPlan } from '../helpers/vm-plans.ts';
import { loadConfig } from '../../cni/config.ts';
import { compile } from '../../planner/compile.ts';
import { renderPlan, shellQuote } from '../../planner/render.ts';
import { MODES } from '../../planner/registry.ts';
import { holds } from '../../planner/predicate.ts';
import { anchorName, ANCHOR_QUERY } from '../../planner/modes/ipvlan/anchor.ts';
import { inNetnsArgv } from '../../lib/netns.ts';
import { HOST, type NodeFacts, type Plan } from '../../model/plan.ts';
import { CniError } from '../../model/errors.ts';

const skip = vmSkipReason() ?? undefined;
const LAB = readFileSync(join(ROOT, 'test/helpers/vm-lab.sh'), 'utf8');
const PING = 'ping -c 3 -i 0.2 -W 2'; // a reply to any of 3 is success (a new path may drop the first)
const NO_PING = 'ping -c 1 -W 1'; // for paths expected to fail

function job(name: string, body: string, files: Record<string, string> = {}): VmJob {
  return { name, script: `#!/bin/sh\nset -eu\n. ./lab.sh\n${body.trim()}\n`, files: { 'lab.sh': LAB, ...files }, timeoutMs: 60_000 };
}

// --- a rendered plan, unchanged --------------------------------------------------------------

const renderedHostGw = job('rendered-host-gw', `
# The golden rendered host-gw ADD plan (its pod netns is /var/run/netns/cni-1234).
ip netns add node1
pod cni-1234
apply node1 plan.sh
result pod_gateway at cni-1234 ${PING} 10.244.1.1
report pod_eth0 "$(at cni-1234 ip -j addr show dev eth0)"
`, { 'plan.sh': readFileSync(join(ROOT, 'fixtures/host-gw-add-1.0.0/plan.sh'), 'utf8') });

// --- ipip, ipipMode always -------------------------------------------------------------------

const ipipPod = (cid: string, pod: string, veth: string, address: string) =>
  ipipPodPlan({ containerId: cid, netns: `/var/run/netns/${pod}`, hostVeth: veth, address, mtu: 1480 });

/** Node i's plan (block 10.244.i.0/24) and the plan of its pod `pod<i>` (10.244.i.10). */
function ipipNode(i: number): Record<string, string> {
  return {
    [`node${i}.sh`]: ipipNodePlan({ name: `node${i}`, block: `10.244.${i}.0/24`, tunnelAddress: `10.244.${i}.1`, tunnelMtu: 1480 }),
    [`pod${i}.sh`]: ipipPod(`c${i}`, `pod${i}`, `tcpod${i}`, `10.244.${i}.10`),
  };
}

const ipipAlways = job('ipip-always', `
# Nodes have a default route, as real ones do: proxy ARP answers for 169.254.1.1 only then.
segment sw0
node node1 198.18.0.1/24 sw0 198.18.0.254
node node2 198.18.0.2/24 sw0 198.18.0.254
router gw 198.18.0.254/24 sw0
pod pod1; pod pod1b; pod pod2
wait_ping node1 198.18.0.2
apply node1 node1.sh; apply node2 node2.sh
apply node1 pod1.sh; apply node1 pod1b.sh; apply node2 pod2.sh
result before_bird at pod1 ${NO_PING} 10.244.2.10
apply node1 bird1.sh; apply node2 bird2.sh
report tunl0_1_before "$(at node1 ip -j -s link show dev tunl0)"
report tunl0_2_before "$(at node2 ip -j -s link show dev tunl0)"
result pod1_pod2 at pod1 ${PING} 10.244.2.10
result pod2_pod1 at pod2 ${PING} 10.244.1.10
result pod1_pod2_df1480 at pod1 ping -c 1 -W 2 -M do -s 1452 10.244.2.10
result pod1_pod2_df1481 at pod1 ping -c 1 -W 2 -M do -s 1453 10.244.2.10
result pod1_pod1b at pod1 ${PING} 10.244.1.11
report tunl0_1_after "$(at node1 ip -j -s link show dev tunl0)"
report tunl0_2_after "$(at node2 ip -j -s link show dev tunl0)"
report pod1_eth0 "$(at pod1 ip -j link show dev eth0)"
report node1_tunl0 "$(at node1 ip -j -d link show dev tunl0)"
report node1_routes "$(at node1 ip -j route show)"
`, {
  ...ipipNode(1),
  ...ipipNode(2),
  'pod1b.sh': ipipPod('c1b', 'pod1b', 'tcpod1b', '10.244.1.11'),
  'bird1.sh': birdKernelRoutes('node1', [{ block: '10.244.2.0/24', via: '198.18.0.2', encapsulate: true }]),
  'bird2.sh': birdKernelRoutes('node2', [{ block: '10.244.1.0/24', via: '198.18.0.1', encapsulate: true }]),
});

// --- ipip, ipipMode crossSubnet --------------------------------------------------------------

const CROSS_SUBNET_LAB = `
# node1 and node2 share subnet A; node3 is in subnet B behind a router that knows no pod blocks.
segment swa; segment swb
node node1 198.18.1.1/24 swa 198.18.1.254
node node2 198.18.1.2/24 swa 198.18.1.254
node node3 198.18.2.3/24 swb 198.18.2.254
router rtr 198.18.1.254/24 swa 198.18.2.254/24 swb
pod pod1; pod pod2; pod pod3
wait_ping node1 198.18.1.2; wait_ping node1 198.18.2.3
apply node1 node1.sh; apply node2 node2.sh; apply node3 node3.sh
apply node1 pod1.sh; apply node2 pod2.sh; apply node3 pod3.sh
`;

/** Pings within subnet A, then across to B, with node1's tunl0 counters between them. */
const CROSS_SUBNET_CHECKS = `
report tunl0_1_a "$(at node1 ip -j -s link show dev tunl0)"
result pod1_pod2 at pod1 ${PING} 10.244.2.10
result pod2_pod1 at pod2 ${PING} 10.244.1.10
report tunl0_1_b "$(at node1 ip -j -s link show dev tunl0)"
result pod1_pod3 at pod1 ${PING} 10.244.3.10
result pod3_pod2 at pod3 ${PING} 10.244.2.10
report tunl0_1_c "$(at node1 ip -j -s link show dev tunl0)"
report rtr_routes "$(at rtr ip -j route show)"
report node1_routes "$(at node1 ip -j route show)"
`;

const ipipCrossSubnet = job('ipip-cross-subnet', `
${CROSS_SUBNET_LAB}
# Plain routing towards another subnet does not work: the router has no route to the block.
at node1 ip route replace 10.244.3.0/24 via 198.18.1.254 dev eth0
result plain_across at pod1 ${NO_PING} 10.244.3.10
apply node1 bird1.sh; apply node2 bird2.sh; apply node3 bird3.sh
${CROSS_SUBNET_CHECKS}
`, {
  ...ipipNode(1),
  ...ipipNode(2),
  ...ipipNode(3),
  'bird1.sh': birdKernelRoutes('node1', [
    { block: '10.244.2.0/24', via: '198.18.1.2', encapsulate: false },
    { block: '10.244.3.0/24', via: '198.18.2.3', encapsulate: true },
  ]),
  'bird2.sh': birdKernelRoutes('node2', [
    { block: '10.244.1.0/24', via: '198.18.1.1', encapsulate: false },
    { block: '10.244.3.0/24', via: '198.18.2.3', encapsulate: true },
  ]),
  'bird3.sh': birdKernelRoutes('node3', [
    { block: '10.244.1.0/24', via: '198.18.1.1', encapsulate: true },
    { block: '10.244.2.0/24', via: '198.18.1.2', encapsulate: true },
  ]),
});

// The same, with real BIRDs on bird.conf files rendered by planner/bird (ipipMode crossSubnet)
// in place of the stand-in routes: BGP over the underlay (multihop through the router to node3).
const birdSkip = skip ?? vmToolSkipReason('bird') ?? undefined;
const CROSS_SUBNET_NODES: BirdNode[] = [
  { name: 'node1', underlayIp: '198.18.1.1', blocks: ['10.244.1.0/24'] },
  { name: 'node2', underlayIp: '198.18.1.2', blocks: ['10.244.2.0/24'] },
  { name: 'node3', underlayIp: '198.18.2.3', blocks: ['10.244.3.0/24'] },
];
const birdConf = (self: BirdNode, subnet: string) =>
  renderBirdConf(birdView({ self: { ...self, underlaySubnet: subnet }, nodes: CROSS_SUBNET_NODES, bgp: { ipipMode: 'crossSubnet', timers: FAST_TIMERS } }));

const ipipBird = job('ipip-bird-cross-subnet', `
${CROSS_SUBNET_LAB}
start=$(cut -d' ' -f1 /proc/uptime)
for n in 1 2 3; do
  nsenter --net=$NETNS/node$n -- bird -f -c ./bird$n.conf -s /run/bird$n.ctl -P /run/bird$n.pid >bird$n.log 2>&1 &
done
wait_bird_routes node1 2 || { cat bird1.log; exit 1; }
wait_bird_routes node2 2 || { cat bird2.log; exit 1; }
wait_bird_routes node3 2 || { cat bird3.log; exit 1; }
report bird_converged_s "$(awk -v s="$start" '{ print $1 - s }' /proc/uptime)"
report bird_routes_1 "$(at node1 ip -j route show proto bird)"
report bird_routes_3 "$(at node3 ip -j route show proto bird)"
${CROSS_SUBNET_CHECKS}
`, {
  ...ipipNode(1),
  ...ipipNode(2),
  ...ipipNode(3),
  'bird1.conf': birdConf(CROSS_SUBNET_NODES[0]!, '198.18.1.0/24'),
  'bird2.conf': birdConf(CROSS_SUBNET_NODES[1]!, '198.18.1.0/24'),
  'bird3.conf': birdConf(CROSS_SUBNET_NODES[2]!, '198.18.2.0/24'),
});

// --- ipvlan: the plans testcni compiles, rendered --------------------------------------------

const VM_FACTS: NodeFacts = { tools: { ip: '/usr/sbin/ip', nsenter: '/usr/bin/nsenter', sysctl: '/usr/sbin/sysctl' }, hostPid: 1, uplink: 'eth0', uplinkMtu: 1500 };
const IPVLAN = MODES.require('ipvlan');

/** What the plugin's pre-planning query finds on a node whose master carries `mode` already. */
const anchorSeen = (mode: string) => [{ ifname: anchorName('eth0'), link: 'eth0', linkinfo: { info_kind: 'ipvlan', info_data: { mode } } }];

interface VmPod { cid: string; ns: string; address: string; file: string; node: string; anchor: unknown }

function ipvlanPlan(mode: string, command: 'ADD' | 'DEL', p: VmPod): Plan {
  const { config } = loadConfig({
    cniVersion: '1.1.0', name: 'lan', type: 'testcni', mode: 'ipvlan', subnet: '198.18.0.0/24', ipvlan: { master: 'eth0', mode },
    ipam: { rangeStart: '198.18.0.11', rangeEnd: '198.18.0.30', gateway: '198.18.0.254' },
  });
  return compile({
    command, config, containerId: p.cid, ifName: 'eth0', netns: `/var/run/netns/${p.ns}`,
    lease: { address: `${p.address}/24`, gateway: '198.18.0.254' }, facts: { ...VM_FACTS, observed: { [ANCHOR_QUERY]: p.anchor } },
  }, IPVLAN);
}

/** node1's first pod plans the master's anchor, its second finds it; node2's first plans its own. */
function ipvlanPods(mode: string): VmPod[] {
  return [
    { cid: 'c1a', ns: 'pod1a', address: '198.18.0.11', file: 'pod1a', node: 'node1', anchor: null },
    { cid: 'c1b', ns: 'pod1b', address: '198.18.0.12', file: 'pod1b', node: 'node1', anchor: anchorSeen(mode) },
    { cid: 'c2a', ns: 'pod2a', address: '198.18.0.21', file: 'pod2a', node: 'node2', anchor: null },
  ];
}

/** A script (run in the node, like the plugin) that runs every probe of the plan and reports
 *  its exit status and output as `<tag>.<i>.rc` / `<tag>.<i>.out`. */
function probeScript(plan: Plan, tag: string): string {
  const lines = plan.steps.filter((s) => s.probe).map((s, i) => {
    const p = s.probe!;
    if (p.mech === 'file' || p.mech === 'path') throw new Error(`${s.id}: a ${p.mech} probe cannot run in the VM`);
    const argv = p.ns === HOST ? p.argv : inNetnsArgv(VM_FACTS.tools.nsenter, p.ns, p.argv);
    return `probe ${tag}.${i} ${argv.map(shellQuote).join(' ')}`;
  });
  return ['#!/bin/sh', 'set -eu', '. ./lab.sh', ...lines].join('\n') + '\n';
}

/** Steps of the plan whose probe does not hold on what the VM reported under `tag`. */
function failingProbes(r: Results, plan: Plan, tag: string): string[] {
  return plan.steps.filter((s) => s.probe).flatMap((s, i) => {
    const stdout = get(r, `${tag}.${i}.out`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout);
    } catch { /* not JSON: JSON predicates see nothing */ }
    return holds(s.probe!.expect, { exitCode: Number(get(r, `${tag}.${i}.rc`)), stdout, json: parsed }) ? [] : [s.id];
  });
}

function ipvlanFiles(mode: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const p of ipvlanPods(mode)) {
    files[`${p.file}.sh`] = renderPlan(ipvlanPlan(mode, 'ADD', p), 'sh', VM_FACTS);
    files[`${p.file}-del.sh`] = renderPlan(ipvlanPlan(mode, 'DEL', p), 'sh', VM_FACTS);
  }
  files['probes.sh'] = probeScript(ipvlanPlan(mode, 'ADD', ipvlanPods(mode)[0]!), 'probe');
  files['probes-after-del.sh'] = probeScript(ipvlanPlan(mode, 'ADD', ipvlanPods(mode)[0]!), 'gone');
  return files;
}

const ANCHOR = anchorName('eth0');

const IPVLAN_SETUP = `
segment sw0
node node1 198.18.0.1/24 sw0
node node2 198.18.0.2/24 sw0
router gw 198.18.0.254/24 sw0
pod pod1a; pod pod1b; pod pod2a
wait_ping node1 198.18.0.2; wait_ping node1 198.18.0.254
report pod1a_before "$(at pod1a ip -j link show)"
report node1_before "$(at node1 ip -j link show)"
apply node1 pod1a.sh; apply node1 pod1b.sh; apply node2 pod2a.sh
report pod1a_eth0 "$(at pod1a ip -j -d link show dev eth0)"
report node1_eth0 "$(at node1 ip -j -d link show dev eth0)"
`;

// After the pings: CHECK's probes, DEL (twice), what is left, and the anchor's view of the master.
const IPVLAN_TEARDOWN = `
apply node1 probes.sh
report anchor "$(at node1 ip -j -d link show dev ${ANCHOR})"
apply node1 pod1a-del.sh
apply node1 probes-after-del.sh
report pod1a_after_del "$(at pod1a ip -j link show)"
apply node1 pod1a-del.sh
result pod1b_pod2a_after_del at pod1b ${PING} 198.18.0.21
apply node1 pod1b-del.sh; apply node2 pod2a-del.sh
report node1_after_del "$(at node1 ip -j link show)"
report pod2a_after_del "$(at pod2a ip -j link show)"
# Anyone creating a child of another mode switches the master, and the anchor shows it.
at node1 ip link add tcx0 link eth0 type ipvlan mode ${'$'}{OTHER_MODE}
report anchor_switched "$(at node1 ip -j -d link show dev ${ANCHOR})"
`;

const ipvlanL2 = job('ipvlan-l2', `
${IPVLAN_SETUP}
result pod1a_pod1b at pod1a ${PING} 198.18.0.12
result pod1a_pod2a at pod1a ${PING} 198.18.0.21
result pod2a_pod1b at pod2a ${PING} 198.18.0.12
result pod1a_gateway at pod1a ${PING} 198.18.0.254
result pod1a_node2 at pod1a ${PING} 198.18.0.2
result pod1a_node1 at pod1a ${NO_PING} 198.18.0.1
report pod1a_routes "$(at pod1a ip -j route show)"
OTHER_MODE=l3
${IPVLAN_TEARDOWN}
`, ipvlanFiles('l2'));

const ipvlanL3 = job('ipvlan-l3', `
${IPVLAN_SETUP}
result pod1a_pod1b at pod1a ${PING} 198.18.0.12
result pod1a_node1 at pod1a ${NO_PING} 198.18.0.1
# l3 children answer no ARP: nothing outside the node reaches a pod without a route to it.
result pod1a_node2_unrouted at pod1a ${NO_PING} 198.18.0.2
# what a cluster (BGP, host routes) gives l3 pods: other nodes route them via their node
at node2 ip route add 198.18.0.11/32 via 198.18.0.1 dev eth0
at node2 ip route add 198.18.0.12/32 via 198.18.0.1 dev eth0
at node1 ip route add 198.18.0.21/32 via 198.18.0.2 dev eth0
result pod1a_node2 at pod1a ${PING} 198.18.0.2
result pod1a_pod2a at pod1a ${PING} 198.18.0.21
result pod2a_pod1b at pod2a ${PING} 198.18.0.12
OTHER_MODE=l2
${IPVLAN_TEARDOWN}
`, ipvlanFiles('l3'));

// --- kernel facts the modes rely on ----------------------------------------------------------

const ipvlanFacts = job('ipvlan-facts', `
ip link add eth0 type veth peer name peer0
ip link set eth0 up
pod p1; pod p2
attempt add_l2 ip link add link eth0 name tcv1 netns /var/run/netns/p1 type ipvlan mode l2
report first_before "$(ip -n p1 -j -d link show dev tcv1)"
attempt add_l3_same_master ip link add link eth0 name tcv2 netns /var/run/netns/p2 type ipvlan mode l3
report first_after "$(ip -n p1 -j -d link show dev tcv1)"
attempt mtu_above_master ip link add link eth0 name tcv3 mtu 1600 type ipvlan mode l3
report mtu_above_master_link "$(ip -j link show dev tcv3)"
ip link set eth0 mtu 1400
report mtu_after_master_shrinks "$(ip -j link show dev tcv3)"
ip -n p1 link set tcv1 up
attempt rename_up ip -n p1 link set tcv1 name eth0
attempt unknown_mode ip link add link eth0 name tcv4 type ipvlan mode l4
attempt on_loopback ip link add link lo name tcv5 type ipvlan mode l2
report master "$(ip -j -d link show dev eth0)"
ip link del eth0
report p1_after_master_gone "$(ip -n p1 -j link show)"
`);

// The usual way round "a pod cannot reach its own node": an ipvlan child of the same master in
// the node netns, with an address of its own and the pods routed through it. It also shows the
// node the master's mode (ip -d -j link), which the pod children in other netns do not.
const ipvlanNodePath = job('ipvlan-node-path', `
segment sw0
node node1 198.18.0.1/24 sw0
for mode in l2 l3; do
  pod p$mode
  at node1 ip link add link eth0 name tcipvl type ipvlan mode $mode
  at node1 ip link add link eth0 name tmp netns $NETNS/p$mode type ipvlan mode $mode
  at p$mode ip link set tmp name eth0
  at p$mode ip addr add 198.18.0.11/24 dev eth0
  at p$mode ip link set eth0 up
  result pod_node_without_$mode at p$mode ${NO_PING} 198.18.0.1
  at node1 ip addr add 198.18.0.100/32 dev tcipvl
  at node1 ip link set tcipvl up
  at node1 ip route add 198.18.0.11/32 dev tcipvl src 198.18.0.100
  report node_child_$mode "$(at node1 ip -j -d link show dev tcipvl)"
  result node_pod_$mode at node1 ${PING} 198.18.0.11
  result pod_node_$mode at p$mode ${PING} 198.18.0.100
  at node1 ip link del tcipvl
  ip netns del p$mode
done
`);

const ipipFacts = job('ipip-facts', `
report tunl0_fresh_netns "$(ip -j -d link show dev tunl0)"
attempt add_tunl0 ip link add tunl0 type ipip
attempt add_second_plain ip link add tcipip type ipip
attempt del_tunl0 ip link del tunl0
report tunl0_after_del "$(ip -j link show dev tunl0)"
ip link add eth0 mtu 9000 type veth peer name peer0
ip addr add 198.18.0.1/24 dev eth0
ip link set eth0 up
ip link set tunl0 up
report tunl0_mtu_9000_underlay "$(ip -j link show dev tunl0)"
attempt route_without_onlink ip route add 10.244.2.0/24 via 198.18.0.2 dev tunl0
attempt route_onlink ip route add 10.244.2.0/24 via 198.18.0.2 dev tunl0 onlink proto bird
`);

// Runs last: with the module gone, merely creating tunl0 loads it again (the kernel's request
// for rtnl-link-ipip), and the fallback tunl0 that comes with it makes the create fail.
// The gateway 169.254.1.1 of ipip pods is answered by proxy ARP on the host veth, which the
// kernel does only when the node routes 169.254.1.1 through another device (its default route).
// A permanent neighbour entry in the pod needs no such route.
const proxyArpFacts = job('proxy-arp-facts', `
ip netns add node1
pod pod1
at node1 ip link add eth0 type veth peer name peer0
at node1 ip addr add 198.18.0.1/24 dev eth0
at node1 ip link set eth0 up
at node1 ip link set peer0 up
at node1 sysctl -q -w net.ipv4.ip_forward=1
at pod1 ip link add eth0 address 02:00:00:00:00:01 type veth peer name tcveth address 02:00:00:00:00:02 netns /var/run/netns/node1
at pod1 ip addr add 10.244.1.10/32 dev eth0
at pod1 ip link set eth0 up
at pod1 ip route add 169.254.1.1 dev eth0 scope link
at pod1 ip route add default via 169.254.1.1 dev eth0
at node1 sysctl -q -w net.ipv4.conf.tcveth.proxy_arp=1 net.ipv4.neigh.tcveth.proxy_delay=0
at node1 ip link set tcveth up
at node1 ip route add 10.244.1.10/32 dev tcveth scope link
result no_default_route at pod1 ${NO_PING} 198.18.0.1
report neigh_no_default_route "$(at pod1 ip -j neigh show 169.254.1.1)"
at pod1 ip neigh replace 169.254.1.1 dev eth0 lladdr 02:00:00:00:00:02 nud permanent
result permanent_neigh at pod1 ${PING} 198.18.0.1
at pod1 ip neigh del 169.254.1.1 dev eth0
at node1 ip route add default via 198.18.0.254 dev eth0 onlink
result with_default_route at pod1 ${PING} 198.18.0.1
report neigh_with_default_route "$(at pod1 ip -j neigh show 169.254.1.1)"
`);

const ipipAutoload = job('ipip-autoload', `
attempt unload modprobe -r ipip
report loaded_before "$(grep -c '^ipip ' /proc/modules || true)"
attempt add_tunl0 ip link add tunl0 type ipip
report loaded_after "$(grep -c '^ipip ' /proc/modules || true)"
report tunl0 "$(ip -j link show dev tunl0)"
`);

const JOBS = [
  renderedHostGw, ipipAlways, ipipCrossSubnet, ...(birdSkip ? [] : [ipipBird]),
  ipvlanL2, ipvlanL3, ipvlanFacts, ipvlanNodePath, ipipFacts, proxyArpFacts, ipipAutoload,
];

// --- reading results -------------------------------------------------------------------------

type Results = Map<string, string>;

function results(j: VmJobResult): Results {
  const m = new Map<string, string>();
  for (const line of j.output.split('\n')) {
    const r = /^RESULT (\S+) ?(.*)$/.exec(line);
    if (r) m.set(r[1]!, r[2]!);
  }
  return m;
}

function get(r: Results, key: string): string {
  const v = r.get(key);
  assert.ok(v !== undefined, `no result ${key}`);
  return v;
}

function json(r: Results, key: string): Record<string, any> {
  return JSON.parse(get(r, key))[0];
}

function tx(r: Results, key: string): number {
  return json(r, key).stats64.tx.packets;
}

function rx(r: Results, key: string): number {
  return json(r, key).stats64.rx.packets;
}

describe('datapaths in an emulated VM (qemu TCG, Debian kernel)', { skip }, () => {
  let run: VmRun;
  const byName = new Map<string, VmJobResult>();

  before(async () => {
    run = await runJobsInVm(JOBS);
    for (const j of run.jobs) byName.set(j.name, j);
  });

  /** The job's results, after checking it ran to the end; its output is in every failure message. */
  function scenario(name: string, t: { diagnostic(m: string): void }): { r: Results; log: string } {
    const j = byName.get(name)!;
    t.diagnostic(`${name}: ${j.ms} ms in the VM`);
    const log = `\n--- ${name} output ---\n${j.output}\n---`;
    assert.equal(j.exitCode, 0, `${name} exited ${j.exitCode}${j.timedOut ? ' (time limit)' : ''}${log}`);
    return { r: results(j), log };
  }

  it('boots Debian\'s kernel with the modules loaded, and runs every job', (t) => {
    t.diagnostic(`kernel ${run.kernelVersion}; ready after ${run.bootMs} ms (guest uptime ${run.guestReadyS} s); whole run ${run.totalMs} ms`);
    assert.ok(run.bootMs > 0, `the guest never reported ready:\n${run.console.slice(-3000)}`);
    assert.deepEqual(run.moduleFailures, []);
    assert.deepEqual(run.jobs.map((j) => j.exitCode !== null), JOBS.map(() => true), run.console.slice(-3000));
  });

  it('runs a rendered plan unchanged (golden host-gw ADD: nsenter --net=PATH, netns "$$")', (t) => {
    const { r, log } = scenario('rendered-host-gw', t);
    assert.equal(get(r, 'pod_gateway'), '0', `pod -> its gateway on the node bridge${log}`);
    assert.equal(json(r, 'pod_eth0').addr_info[0].local, '10.244.1.7', log);
  });

  it('ipip always: pod -> pod across nodes through tunl0; full-size packets fit at MTU underlay - 20', (t) => {
    const { r, log } = scenario('ipip-always', t);
    assert.notEqual(get(r, 'before_bird'), '0', `without the routes BIRD installs there is no path${log}`);
    assert.equal(get(r, 'pod1_pod2'), '0', `pod1 -> pod2${log}`);
    assert.equal(get(r, 'pod2_pod1'), '0', `pod2 -> pod1${log}`);
    assert.equal(get(r, 'pod1_pod1b'), '0', `pod1 -> pod1b on the same node${log}`);
    assert.equal(get(r, 'pod1_pod2_df1480'), '0', `a 1480-byte packet with DF crosses (1500 on the underlay)${log}`);
    assert.notEqual(get(r, 'pod1_pod2_df1481'), '0', `a 1481-byte packet with DF does not leave the pod${log}`);
    assert.equal(json(r, 'pod1_eth0').mtu, 1480);
    assert.equal(json(r, 'node1_tunl0').mtu, 1480);
    // The traffic really went through the tunnel on both ends.
    assert.ok(tx(r, 'tunl0_1_after') - tx(r, 'tunl0_1_before') >= 5, `node1 tunl0 tx${log}`);
    assert.ok(rx(r, 'tunl0_2_after') - rx(r, 'tunl0_2_before') >= 5, `node2 tunl0 rx${log}`);
    const routes = JSON.parse(get(r, 'node1_routes')) as Record<string, any>[];
    const remote = routes.find((x) => x.dst === '10.244.2.0/24');
    assert.deepEqual([remote?.gateway, remote?.dev, remote?.flags], ['198.18.0.2', 'tunl0', ['onlink']], log);
  });

  /** Within subnet A plain (tunl0 untouched), across to B encapsulated; the router learns no pod route. */
  function crossSubnetChecks(r: Results, log: string): void {
    assert.equal(get(r, 'pod1_pod2'), '0', `pod1 -> pod2, same subnet${log}`);
    assert.equal(get(r, 'pod2_pod1'), '0', `pod2 -> pod1, same subnet${log}`);
    assert.equal(tx(r, 'tunl0_1_b'), tx(r, 'tunl0_1_a'), `no encapsulation within the subnet${log}`);
    assert.equal(get(r, 'pod1_pod3'), '0', `pod1 -> pod3, across subnets${log}`);
    assert.equal(get(r, 'pod3_pod2'), '0', `pod3 -> pod2, across subnets${log}`);
    assert.ok(tx(r, 'tunl0_1_c') - tx(r, 'tunl0_1_b') >= 3, `encapsulated across subnets${log}`);
    const rtr = JSON.parse(get(r, 'rtr_routes')) as { dst: string }[];
    assert.ok(!rtr.some((x) => x.dst.startsWith('10.244.')), `the router never learns a pod route${log}`);
  }

  it('ipip crossSubnet: plain routing within a subnet, encapsulated across subnets', (t) => {
    const { r, log } = scenario('ipip-cross-subnet', t);
    assert.notEqual(get(r, 'plain_across'), '0', `plain routing through the router fails (it knows no blocks)${log}`);
    crossSubnetChecks(r, log);
  });

  it('ipip crossSubnet with real BIRDs (rendered bird.conf): the routes they install carry the traffic', { skip: birdSkip }, (t) => {
    const { r, log } = scenario('ipip-bird-cross-subnet', t);
    t.diagnostic(`BIRD start -> every node holds both other blocks: ${get(r, 'bird_converged_s')} s (guest clock)`);
    const routes = (key: string) => (JSON.parse(get(r, key)) as Record<string, any>[])
      .map((x) => `${x.dst} via ${x.gateway} dev ${x.dev}${x.flags?.includes('onlink') ? ' onlink' : ''}`).sort();
    assert.deepEqual(routes('bird_routes_1'), ['10.244.2.0/24 via 198.18.1.2 dev eth0', '10.244.3.0/24 via 198.18.2.3 dev tunl0 onlink'], log);
    assert.deepEqual(routes('bird_routes_3'), ['10.244.1.0/24 via 198.18.1.1 dev tunl0 onlink', '10.244.2.0/24 via 198.18.1.2 dev tunl0 onlink'], log);
    crossSubnetChecks(r, log);
  });

  /** What every ipvlan job checks after its pings: probes, DEL, the anchor. */
  function ipvlanLifecycle(r: Results, log: string, mode: string, other: string): void {
    const plan = ipvlanPlan(mode, 'ADD', ipvlanPods(mode)[0]!);
    assert.deepEqual(failingProbes(r, plan, 'probe'), [], `CHECK: every probe of pod1a's plan holds after its ADD${log}`);
    const anchor = json(r, 'anchor');
    assert.deepEqual([anchor.linkinfo.info_kind, anchor.linkinfo.info_data.mode, anchor.flags.includes('UP')], ['ipvlan', mode, false], `the anchor, down${log}`);
    // After DEL: the child is gone under both names; the anchor stays (node state).
    assert.deepEqual(failingProbes(r, plan, 'gone').sort(), [`link.ipvlan:pod:eth0`, 'link.name:pod:eth0', 'addr:pod:eth0', 'link.up:pod:eth0', 'route:pod:default'].sort(), log);
    // (The VM's ipip module gives every namespace a tunl0: compare with what was there before.)
    const names = (key: string) => (JSON.parse(get(r, key)) as { ifname: string }[]).map((l) => l.ifname).sort();
    assert.deepEqual(names('pod1a_after_del'), names('pod1a_before'), `nothing left in the pod${log}`);
    assert.equal(get(r, 'pod1b_pod2a_after_del'), '0', `the other pods are untouched by pod1a's DEL (run twice)${log}`);
    assert.deepEqual(names('node1_after_del'), [...names('node1_before'), ANCHOR].sort(), `the node keeps the anchor, nothing else${log}`);
    assert.deepEqual(names('pod2a_after_del'), names('pod1a_before'), log);
    // The anchor reports the master's mode as the kernel keeps it: after a child of another mode,
    // an ADD asking for this network's mode is refused before anything changes.
    const switched = JSON.parse(get(r, 'anchor_switched'));
    assert.equal(switched[0].linkinfo.info_data.mode, other, log);
    const { config } = loadConfig({ cniVersion: '1.1.0', name: 'lan', type: 'testcni', mode: 'ipvlan', subnet: '198.18.0.0/24', ipvlan: { master: 'eth0', mode } });
    assert.throws(() => IPVLAN.preflight!({ command: 'ADD', config, containerId: 'c9', ifName: 'eth0', netns: '/var/run/netns/p9', facts: { ...VM_FACTS, observed: { [ANCHOR_QUERY]: switched } } }),
      (e: unknown) => e instanceof CniError && e.code === 7 && e.message.includes('ipvlan.mode') && e.details.includes(`carries ipvlan mode ${other}`));
  }

  it('ipvlan l2 from rendered plans: the child made in the pod and renamed; pod <-> pod on a node and across nodes; CHECK, DEL', (t) => {
    const { r, log } = scenario('ipvlan-l2', t);
    const eth0 = json(r, 'pod1a_eth0');
    assert.deepEqual([eth0.ifname, eth0.linkinfo.info_kind, eth0.linkinfo.info_data.mode], ['eth0', 'ipvlan', 'l2']);
    assert.equal(json(r, 'node1_eth0').promiscuity, 0, 'the master is not left promiscuous');
    assert.equal(get(r, 'pod1a_pod1b'), '0', `same node${log}`);
    assert.equal(get(r, 'pod1a_pod2a'), '0', `across nodes${log}`);
    assert.equal(get(r, 'pod2a_pod1b'), '0', `across nodes, the other way${log}`);
    assert.equal(get(r, 'pod1a_gateway'), '0', `the node network's gateway${log}`);
    assert.equal(get(r, 'pod1a_node2'), '0', `another node${log}`);
    assert.notEqual(get(r, 'pod1a_node1'), '0', `its own node's master address is unreachable (an ipvlan property)${log}`);
    ipvlanLifecycle(r, log, 'l2', 'l3');
  });

  it('ipvlan l3 from rendered plans: pods on a node talk; other nodes reach them only through routes via their node; CHECK, DEL', (t) => {
    const { r, log } = scenario('ipvlan-l3', t);
    assert.equal(json(r, 'pod1a_eth0').linkinfo.info_data.mode, 'l3');
    assert.ok(json(r, 'pod1a_eth0').flags.includes('NOARP'), 'l3 children do no ARP');
    assert.equal(get(r, 'pod1a_pod1b'), '0', `same node${log}`);
    assert.notEqual(get(r, 'pod1a_node1'), '0', `its own node's master address is unreachable${log}`);
    assert.notEqual(get(r, 'pod1a_node2_unrouted'), '0', `no route back from another node: no reply${log}`);
    assert.equal(get(r, 'pod1a_node2'), '0', `another node, with a route back${log}`);
    assert.equal(get(r, 'pod1a_pod2a'), '0', `across nodes, routed${log}`);
    assert.equal(get(r, 'pod2a_pod1b'), '0', `across nodes, the other way${log}`);
    ipvlanLifecycle(r, log, 'l3', 'l2');
  });

  it('ipvlan facts: a second mode on a master silently re-modes it; MTU above the master is accepted', (t) => {
    const { r, log } = scenario('ipvlan-facts', t);
    assert.equal(get(r, 'add_l2'), '0', log);
    assert.equal(json(r, 'first_before').linkinfo.info_data.mode, 'l2');
    // The kernel does not refuse a conflicting mode: it switches every child on the master.
    assert.equal(get(r, 'add_l3_same_master'), '0', log);
    assert.equal(json(r, 'first_after').linkinfo.info_data.mode, 'l3', `the existing l2 pod became l3${log}`);
    assert.equal(get(r, 'mtu_above_master'), '0', log);
    assert.equal(json(r, 'mtu_above_master_link').mtu, 1600, 'the kernel accepts a child MTU above the master\'s');
    assert.equal(json(r, 'mtu_after_master_shrinks').mtu, 1400, 'lowering the master\'s MTU lowers every child\'s');
    assert.equal(get(r, 'rename_up.err'), 'RTNETLINK answers: Device or resource busy', log);
    assert.equal(get(r, 'unknown_mode.err'), 'Error: argument of "mode" must be either "l2", "l3" or "l3s"', log);
    assert.equal(get(r, 'on_loopback.err'), 'RTNETLINK answers: Invalid argument', log);
    assert.equal(json(r, 'master').promiscuity, 0);
    const left = (JSON.parse(get(r, 'p1_after_master_gone')) as { ifname: string }[]).map((l) => l.ifname);
    assert.ok(!left.includes('tcv1'), `deleting the master deletes its children in the pods${log}`);
  });

  it('ipvlan: a node-side child with its own address gives node <-> pod, and shows the master\'s mode', (t) => {
    const { r, log } = scenario('ipvlan-node-path', t);
    for (const mode of ['l2', 'l3']) {
      assert.notEqual(get(r, `pod_node_without_${mode}`), '0', `${mode}: no path to the node's own address${log}`);
      assert.equal(json(r, `node_child_${mode}`).linkinfo.info_data.mode, mode);
      assert.equal(get(r, `node_pod_${mode}`), '0', `${mode}: node -> pod through its child${log}`);
      assert.equal(get(r, `pod_node_${mode}`), '0', `${mode}: pod -> the node child's address${log}`);
    }
  });

  it('ipip facts: tunl0 is in every netns; it cannot be created or deleted; routes need onlink', (t) => {
    const { r, log } = scenario('ipip-facts', t);
    const fresh = json(r, 'tunl0_fresh_netns');
    assert.deepEqual([fresh.mtu, fresh.linkinfo.info_kind, fresh.linkinfo.info_data.pmtudisc], [1480, 'ipip', false], log);
    assert.equal(get(r, 'add_tunl0.err'), 'RTNETLINK answers: File exists', log);
    assert.equal(get(r, 'add_second_plain.err'), 'RTNETLINK answers: File exists', 'a second any/any ipip device collides with tunl0');
    assert.equal(get(r, 'del_tunl0'), '0', log);
    assert.equal(json(r, 'tunl0_after_del').ifname, 'tunl0', `deleting the fallback tunl0 "succeeds" and does nothing${log}`);
    assert.equal(json(r, 'tunl0_mtu_9000_underlay').mtu, 1480, 'tunl0 does not follow the underlay MTU: set it');
    assert.equal(get(r, 'route_without_onlink.err'), 'Error: Nexthop has invalid gateway.', log);
    assert.equal(get(r, 'route_onlink'), '0', log);
  });

  it('proxy ARP for 169.254.1.1 needs a node route through another device; a permanent neighbour does not', (t) => {
    const { r, log } = scenario('proxy-arp-facts', t);
    assert.notEqual(get(r, 'no_default_route'), '0', `no default route on the node: no proxy ARP answer${log}`);
    assert.equal(get(r, 'permanent_neigh'), '0', `a permanent neighbour for 169.254.1.1 works without it${log}`);
    assert.equal(get(r, 'with_default_route'), '0', `with a default route on the node, proxy ARP answers${log}`);
  });

  it('ipip facts: creating tunl0 where ipip is not loaded loads it, then fails with "File exists"', (t) => {
    const { r, log } = scenario('ipip-autoload', t);
    assert.equal(get(r, 'unload'), '0', log);
    assert.equal(get(r, 'loaded_before'), '0', log);
    assert.equal(get(r, 'add_tunl0.err'), 'RTNETLINK answers: File exists', log);
    assert.equal(get(r, 'loaded_after'), '1', log);
    assert.equal(json(r, 'tunl0').ifname, 'tunl0');
  });
});
