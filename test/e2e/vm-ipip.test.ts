// The ipip datapath in an emulated VM (this machine's kernel has no ipip device; see
// test/helpers/vm.ts), from the plans testcni compiles, rendered as shell scripts: each node's
// node plan (renderNodeScript: the tunnel, the blackhole, and BIRD started on the bird.conf its
// daemon spec declares, rendered from templates/bird.conf.hbs as the agent renders it) and each
// pod's ADD and DEL plans (renderPlan 'sh'), run inside the node netns as the agent and the
// plugin would. Real BIRDs install the routes; pods ping across nodes through tunl0 (always),
// or plainly within an underlay subnet and through tunl0 across subnets (crossSubnet). After
// ADD every probe of the pod's and the node's plans holds, as CHECK would find.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/netns.ts';
import { vmSkipReason, vmToolSkipReason, type VmJob } from '../helpers/vm.ts';
import { vmBoot, resultText, resultJson, probeScript, failingProbes, type VmResults } from '../helpers/vm-results.ts';
import { FAST_TIMERS } from '../helpers/bgp.ts';
import { loadConfig } from '../../cni/config.ts';
import { compile } from '../../planner/compile.ts';
import { MODES } from '../../planner/registry.ts';
import { renderPlan, renderNodeScript } from '../../planner/render.ts';
import { renderTemplate } from '../../planner/templates.ts';
import type { NodeFacts, Plan, Step } from '../../model/plan.ts';
import type { NodeRecord } from '../../model/node.ts';
import type { NodeContext } from '../../planner/mode.ts';
import type { IpipConfig } from '../../planner/modes/ipip/config.ts';
import { hostVethName } from '../../planner/names.ts';

const skip = vmSkipReason() ?? vmToolSkipReason('bird') ?? vmToolSkipReason('birdc') ?? undefined;
const LAB = readFileSync(join(ROOT, 'test/helpers/vm-lab.sh'), 'utf8');
const PING = 'ping -c 3 -i 0.2 -W 2'; // a reply to any of 3 is success
const NO_PING = 'ping -c 1 -W 1'; // for paths expected to fail
const IPIP = MODES.require('ipip');
const VM_FACTS: NodeFacts = {
  tools: { ip: '/usr/sbin/ip', nsenter: '/usr/bin/nsenter', sysctl: '/usr/sbin/sysctl', bird: '/usr/sbin/bird', birdc: '/usr/sbin/birdc' },
  hostPid: 1, uplink: 'eth0', uplinkMtu: 1500,
};

function job(name: string, body: string, files: Record<string, string>): VmJob {
  return { name, script: `#!/bin/sh\nset -eu\n. ./lab.sh\n${body.trim()}\n`, files: { 'lab.sh': LAB, ...files }, timeoutMs: 90_000 };
}

function networkConfig(ipipMode: string): NodeContext<IpipConfig>['config'] {
  return loadConfig({ cniVersion: '1.1.0', name: 'testcni', type: 'testcni', mode: 'ipip', subnet: '10.244.0.0/16', bgp: { ipipMode, timers: FAST_TIMERS } }).config as NodeContext<IpipConfig>['config'];
}

interface VmNode extends NodeRecord {
  subnet: string;
}

/** The node plan the agent would compute on a fresh node (nothing of testcni's there yet,
 *  forwarding off, tunl0 as the ipip module makes it), with BIRD's configuration rendered. */
function nodePlan(ipipMode: string, self: VmNode, nodes: VmNode[]): { steps: Step[]; script: string } {
  const ctx: NodeContext<IpipConfig> = {
    config: networkConfig(ipipMode), facts: VM_FACTS, self, nodes, routeProtocol: 151, underlaySubnet: self.subnet,
    dirs: { run: `/run/testcni-${self.name}`, state: `/tmp/testcni-${self.name}` }, secrets: {},
  };
  const planner = IPIP.node!;
  const observed: Record<string, unknown> = {};
  for (const [name, q] of Object.entries(planner.observe(ctx))) observed[name] = q.mech === 'sysctl' ? '0' : name === 'uplink' ? [{ ifname: 'eth0', mtu: 1500 }] : [];
  const steps = planner.plan(ctx, observed);
  const daemons = planner.daemons!(ctx, observed).map((spec) => ({ spec, text: renderTemplate(spec.config.template, spec.config.view) }));
  return { steps, script: renderNodeScript(`testcni node plan for ${self.name} (mode ipip, ${ipipMode})`, steps, VM_FACTS, daemons) };
}

interface VmPod {
  file: string;
  cid: string;
  ns: string;
  address: string;
}

function podPlan(ipipMode: string, p: VmPod, command: 'ADD' | 'DEL'): Plan {
  const block = p.address.replace(/\.\d+$/, '.0');
  return compile({
    command, config: networkConfig(ipipMode), containerId: p.cid, ifName: 'eth0', netns: `/var/run/netns/${p.ns}`,
    lease: { address: `${p.address}/24`, gateway: block.replace(/\.0$/, '.1') }, facts: VM_FACTS,
  }, IPIP);
}

const block = (i: number) => `10.244.${i}.0/24`;

// --- always: two nodes on one segment, no default route (the pods' gateway needs no proxy ARP) ---

const ALWAYS_NODES: VmNode[] = [
  { name: 'node1', underlayIp: '198.18.0.1', block: block(1), subnet: '198.18.0.0/24' },
  { name: 'node2', underlayIp: '198.18.0.2', block: block(2), subnet: '198.18.0.0/24' },
];
const ALWAYS_PODS: Record<string, VmPod> = {
  pod1: { file: 'pod1', cid: 'c1', ns: 'pod1', address: '10.244.1.10' },
  pod1b: { file: 'pod1b', cid: 'c1b', ns: 'pod1b', address: '10.244.1.11' },
  pod2: { file: 'pod2', cid: 'c2', ns: 'pod2', address: '10.244.2.10' },
  pod2c: { file: 'pod2c', cid: 'c2c', ns: 'pod2c', address: '10.244.2.11' },
};
const alwaysNode1 = nodePlan('always', ALWAYS_NODES[0]!, ALWAYS_NODES);
const alwaysPod1 = podPlan('always', ALWAYS_PODS.pod1!, 'ADD');

const ipipAlways = job('ipip-always-rendered', `
segment sw0
node node1 198.18.0.1/24 sw0
node node2 198.18.0.2/24 sw0
pod pod1; pod pod1b; pod pod2
wait_ping node1 198.18.0.2
apply node1 node1.sh; apply node2 node2.sh
apply node1 pod1.sh; apply node1 pod1b.sh; apply node2 pod2.sh
wait_bird_routes node1 1 || { cat /tmp/testcni-node1/bird/bird.log; exit 1; }
wait_bird_routes node2 1 || { cat /tmp/testcni-node2/bird/bird.log; exit 1; }
report tunl0_1_before "$(at node1 ip -j -s link show dev tunl0)"
report tunl0_2_before "$(at node2 ip -j -s link show dev tunl0)"
result pod1_pod2 at pod1 ${PING} 10.244.2.10
result pod2_pod1 at pod2 ${PING} 10.244.1.10
result pod1_pod2_df1480 at pod1 ping -c 1 -W 2 -M do -s 1452 10.244.2.10
result pod1_pod2_df1481 at pod1 ping -c 1 -W 2 -M do -s 1453 10.244.2.10
result pod1_pod1b at pod1 ${PING} 10.244.1.11
result node1_pod2 at node1 ${PING} 10.244.2.10
report tunl0_1_after "$(at node1 ip -j -s link show dev tunl0)"
report tunl0_2_after "$(at node2 ip -j -s link show dev tunl0)"
# A pod answers the first ping from another node's pod right after its ADD.
pod pod2c
apply node2 pod2c.sh
result pod1_pod2c_first at pod1 ping -c 1 -W 2 10.244.2.11
report pod1_eth0 "$(at pod1 ip -j link show dev eth0)"
report node1_tunl0 "$(at node1 ip -j -d addr show dev tunl0)"
report node1_routes "$(at node1 ip -j route show)"
apply node1 pod1-probes.sh
apply node1 node1-probes.sh
apply node1 pod1b-del.sh
report pod1b_links "$(at pod1b ip -j link show)"
report node1_links "$(at node1 ip -j link show)"
`, {
  'node1.sh': alwaysNode1.script,
  'node2.sh': nodePlan('always', ALWAYS_NODES[1]!, ALWAYS_NODES).script,
  'pod1.sh': renderPlan(alwaysPod1, 'sh', VM_FACTS),
  'pod1-probes.sh': probeScript(alwaysPod1.steps, VM_FACTS.tools.nsenter, 'pod1probe'),
  'node1-probes.sh': probeScript(alwaysNode1.steps, VM_FACTS.tools.nsenter, 'node1probe'),
  'pod1b.sh': renderPlan(podPlan('always', ALWAYS_PODS.pod1b!, 'ADD'), 'sh', VM_FACTS),
  'pod1b-del.sh': renderPlan(podPlan('always', ALWAYS_PODS.pod1b!, 'DEL'), 'sh', VM_FACTS),
  'pod2.sh': renderPlan(podPlan('always', ALWAYS_PODS.pod2!, 'ADD'), 'sh', VM_FACTS),
  'pod2c.sh': renderPlan(podPlan('always', ALWAYS_PODS.pod2c!, 'ADD'), 'sh', VM_FACTS),
});

// --- crossSubnet: node1 and node2 share subnet A; node3 is in subnet B behind a router that
// knows no pod blocks (BGP to node3 is multihop through it) ---

const CROSS_NODES: VmNode[] = [
  { name: 'node1', underlayIp: '198.18.1.1', block: block(1), subnet: '198.18.1.0/24' },
  { name: 'node2', underlayIp: '198.18.1.2', block: block(2), subnet: '198.18.1.0/24' },
  { name: 'node3', underlayIp: '198.18.2.3', block: block(3), subnet: '198.18.2.0/24' },
];
const crossPod = (i: number): VmPod => ({ file: `pod${i}`, cid: `c${i}`, ns: `pod${i}`, address: `10.244.${i}.10` });

const ipipCrossSubnet = job('ipip-cross-subnet-rendered', `
segment swa; segment swb
node node1 198.18.1.1/24 swa 198.18.1.254
node node2 198.18.1.2/24 swa 198.18.1.254
node node3 198.18.2.3/24 swb 198.18.2.254
router rtr 198.18.1.254/24 swa 198.18.2.254/24 swb
pod pod1; pod pod2; pod pod3
wait_ping node1 198.18.1.2; wait_ping node1 198.18.2.3
apply node1 pod1.sh; apply node2 pod2.sh; apply node3 pod3.sh
# Plain routing towards another subnet does not work: the router has no route to the block.
at node1 ip route add 10.244.3.0/24 via 198.18.1.254 dev eth0
result plain_across at pod1 ${NO_PING} 10.244.3.10
at node1 ip route del 10.244.3.0/24 via 198.18.1.254 dev eth0
apply node1 node1.sh; apply node2 node2.sh; apply node3 node3.sh
for n in 1 2 3; do wait_bird_routes node$n 2 || { cat /tmp/testcni-node$n/bird/bird.log; exit 1; }; done
report tunl0_1_a "$(at node1 ip -j -s link show dev tunl0)"
result pod1_pod2 at pod1 ${PING} 10.244.2.10
result pod2_pod1 at pod2 ${PING} 10.244.1.10
report tunl0_1_b "$(at node1 ip -j -s link show dev tunl0)"
result pod1_pod3 at pod1 ${PING} 10.244.3.10
result pod3_pod2 at pod3 ${PING} 10.244.2.10
report tunl0_1_c "$(at node1 ip -j -s link show dev tunl0)"
report rtr_routes "$(at rtr ip -j route show)"
report node1_routes "$(at node1 ip -j route show proto bird)"
report node3_routes "$(at node3 ip -j route show proto bird)"
`, Object.fromEntries(CROSS_NODES.flatMap((n, i) => [
  [`node${i + 1}.sh`, nodePlan('crossSubnet', n, CROSS_NODES).script],
  [`pod${i + 1}.sh`, renderPlan(podPlan('crossSubnet', crossPod(i + 1), 'ADD'), 'sh', VM_FACTS)],
])));

const JOBS = [ipipAlways, ipipCrossSubnet];

const tx = (r: VmResults, key: string): number => resultJson(r, key).stats64.tx.packets;
const rx = (r: VmResults, key: string): number => resultJson(r, key).stats64.rx.packets;

describe('ipip in an emulated VM, from rendered plans with real BIRDs (qemu TCG, Debian kernel)', { skip }, () => {
  const vm = vmBoot(JOBS);
  before(() => vm.boot());
  const scenario = vm.scenario.bind(vm);

  it('boots and runs every job', (t) => vm.assertRanAll(t));

  it('always: pod -> pod across nodes through tunl0 on the routes BIRD installs; full-size packets fit at MTU underlay - 20', (t) => {
    const { r, log } = scenario('ipip-always-rendered', t);
    assert.equal(resultText(r, 'pod1_pod2'), '0', `pod1 -> pod2${log}`);
    assert.equal(resultText(r, 'pod2_pod1'), '0', `pod2 -> pod1${log}`);
    assert.equal(resultText(r, 'pod1_pod1b'), '0', `pod1 -> pod1b on the same node${log}`);
    assert.equal(resultText(r, 'node1_pod2'), '0', `node1 -> a pod of node2 (from the tunnel's address)${log}`);
    assert.equal(resultText(r, 'pod1_pod2_df1480'), '0', `a 1480-byte packet with DF crosses (1500 on the underlay)${log}`);
    assert.notEqual(resultText(r, 'pod1_pod2_df1481'), '0', `a 1481-byte packet with DF does not leave the pod${log}`);
    assert.equal(resultText(r, 'pod1_pod2c_first'), '0', `a new pod answers the first ping right after its ADD${log}`);
    assert.equal(resultJson(r, 'pod1_eth0').mtu, 1480);
    const tunl0 = resultJson(r, 'node1_tunl0');
    assert.equal(tunl0.mtu, 1480);
    assert.deepEqual(tunl0.addr_info.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`), ['10.244.1.1/32'], 'the block\'s first address on the tunnel');
    assert.ok(tx(r, 'tunl0_1_after') - tx(r, 'tunl0_1_before') >= 5, `node1 tunl0 tx${log}`);
    assert.ok(rx(r, 'tunl0_2_after') - rx(r, 'tunl0_2_before') >= 5, `node2 tunl0 rx${log}`);
    const routes = JSON.parse(resultText(r, 'node1_routes')) as Record<string, any>[];
    const remote = routes.find((x) => x.dst === '10.244.2.0/24');
    assert.deepEqual([remote?.gateway, remote?.dev, remote?.flags, remote?.protocol], ['198.18.0.2', 'tunl0', ['onlink'], 'bird'], log);
    const own = routes.find((x) => x.dst === '10.244.1.0/24');
    assert.deepEqual([own?.type, own?.protocol], ['blackhole', '151'], `the node's block is the agent's blackhole${log}`);
  });

  it('always: every probe of the pod\'s and the node\'s plans holds after ADD; DEL leaves nothing of the pod', (t) => {
    const { r, log } = scenario('ipip-always-rendered', t);
    assert.deepEqual(failingProbes(r, alwaysPod1.steps, 'pod1probe'), [], `pod plan probes${log}`);
    assert.deepEqual(failingProbes(r, alwaysNode1.steps, 'node1probe'), [], `node plan probes${log}`);
    // The kernel gives every netns its fallback tunl0 (the pod's too): nothing else is left.
    assert.deepEqual((JSON.parse(resultText(r, 'pod1b_links')) as { ifname: string }[]).map((l) => l.ifname), ['lo', 'tunl0'], log);
    const links = (JSON.parse(resultText(r, 'node1_links')) as { ifname: string }[]).map((l) => l.ifname);
    assert.ok(!links.includes(hostVethName('c1b', 'eth0')), `pod1b's host veth is gone${log}`);
    assert.ok(links.includes(hostVethName('c1', 'eth0')), `pod1's stays${log}`);
  });

  it('crossSubnet: plainly routed within a subnet, through tunl0 across subnets, on the routes BIRD installs', (t) => {
    const { r, log } = scenario('ipip-cross-subnet-rendered', t);
    assert.notEqual(resultText(r, 'plain_across'), '0', `plain routing through the router fails (it knows no blocks)${log}`);
    assert.equal(resultText(r, 'pod1_pod2'), '0', `pod1 -> pod2, same subnet${log}`);
    assert.equal(resultText(r, 'pod2_pod1'), '0', `pod2 -> pod1, same subnet${log}`);
    assert.equal(tx(r, 'tunl0_1_b'), tx(r, 'tunl0_1_a'), `no encapsulation within the subnet${log}`);
    assert.equal(resultText(r, 'pod1_pod3'), '0', `pod1 -> pod3, across subnets${log}`);
    assert.equal(resultText(r, 'pod3_pod2'), '0', `pod3 -> pod2, across subnets${log}`);
    assert.ok(tx(r, 'tunl0_1_c') - tx(r, 'tunl0_1_b') >= 3, `encapsulated across subnets${log}`);
    const rtr = JSON.parse(resultText(r, 'rtr_routes')) as { dst: string }[];
    assert.ok(!rtr.some((x) => x.dst.startsWith('10.244.')), `the router never learns a pod route${log}`);
    const n1 = JSON.parse(resultText(r, 'node1_routes')) as Record<string, any>[];
    assert.deepEqual(n1.map((x) => [x.dst, x.gateway, x.dev, x.flags]).sort(), [
      ['10.244.2.0/24', '198.18.1.2', 'eth0', []],
      ['10.244.3.0/24', '198.18.2.3', 'tunl0', ['onlink']],
    ], log);
    const n3 = JSON.parse(resultText(r, 'node3_routes')) as Record<string, any>[];
    assert.ok(n3.every((x) => x.dev === 'tunl0'), `node3 reaches both others through the tunnel${log}`);
  });
});
