// The order and shape of the vxlan dataplane recipe (pure); the datapath test runs it for real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  nodeSetup, nodeAttach, podSetup, endpointUpdate, podTeardown, remoteUpdates, remoteDeletes, batchInput,
  DEFAULT_TOOLS, type NodeDataplane, type PodDataplane,
} from '../../bpf/recipe.ts';
import { HOST } from '../../model/plan.ts';

const node: NodeDataplane = {
  tools: DEFAULT_TOOLS, bpffs: '/sys/fs/bpf', pinDir: '/sys/fs/bpf/testcni/n1', object: '/o/vxlan.o', device: 'testcni.vxlan',
  mac: '02:00:00:00:01:01', mtu: 1450, port: 8472, vni: 13190, gateway: '10.244.1.1', clusterSubnet: '10.244.0.0/16',
  routeProtocol: 151, endpointsSize: 16384, remoteSize: 4096,
};
const pod: PodDataplane = {
  tools: DEFAULT_TOOLS, netns: '/var/run/netns/p1', ifName: 'eth0', hostVeth: 'tc0123456789a', podMac: '02:00:00:00:0a:0a',
  hostMac: '0a:00:00:00:0a:01', ip: '10.244.1.2', gateway: '10.244.1.1', mtu: 1450, nodeNetns: '4242', routeProtocol: 151,
};
const ids = (steps: { id: string }[]) => steps.map((s) => s.id);
const before = (list: string[], a: string, b: string) => {
  assert.ok(list.includes(a) && list.includes(b), `${a} and ${b} in ${list.join(', ')}`);
  assert.ok(list.indexOf(a) < list.indexOf(b), `${a} before ${b}`);
};

test('node setup: bpffs and the pin directory first, the maps before the programs that reuse them', () => {
  const steps = ids([...nodeSetup(node), ...nodeAttach(node, 7)]);
  assert.equal(steps[0], 'bpffs:host:/sys/fs/bpf');
  before(steps, 'dir:host:/sys/fs/bpf/testcni/n1/maps', 'bpf.map.create:host:testcni_eps');
  before(steps, 'addr:host:testcni.vxlan', 'route:host:10.244.0.0/16');
  for (const m of ['testcni_eps', 'testcni_remote', 'testcni_cfg']) before(steps, `bpf.map.create:host:${m}`, 'bpf.progs:host:/sys/fs/bpf/testcni/n1/progs');
  before(steps, 'bpf.progs.clear:host:/sys/fs/bpf/testcni/n1/progs', 'bpf.progs:host:/sys/fs/bpf/testcni/n1/progs');
  // Without its config the VXLAN ingress program drops everything: config first, then the filters.
  before(steps, 'bpf.map.update:host:testcni_cfg', 'tc.filter:host:testcni.vxlan:ingress');
  before(steps, 'tc.qdisc:host:testcni.vxlan', 'tc.filter:host:testcni.vxlan:egress');
  assert.equal(new Set(steps).size, steps.length, 'ids are unique');
  for (const s of [...nodeSetup(node), ...nodeAttach(node, 7)]) {
    assert.equal(s.ns, HOST);
    assert.equal(s.undo, null, `${s.id}: node scope is never undone by DEL`);
    assert.ok(s.argv[0]!.startsWith('/'), `${s.id}: absolute program`);
    assert.ok(s.probe, `${s.id} has a probe`);
  }
});

test('tx checksum offload: off unless asked for, and the probe checks what was asked', () => {
  const step = (n: NodeDataplane) => nodeSetup(n).find((s) => s.id === 'ethtool:host:testcni.vxlan:tx')!;
  assert.deepEqual(step(node).argv.slice(1), ['-K', 'testcni.vxlan', 'tx', 'off']);
  assert.deepEqual(step(node).probe!.expect, { $some: { 'tx-checksumming': { active: false } } });
  const on = step({ ...node, txChecksumOffload: true });
  assert.deepEqual(on.argv.slice(1), ['-K', 'testcni.vxlan', 'tx', 'on']);
  assert.deepEqual(on.probe!.expect, { $some: { 'tx-checksumming': { active: true } } });
});

test('the map sizes of the node reach bpftool map create', () => {
  const create = nodeSetup({ ...node, endpointsSize: 65536, remoteSize: 123 }).filter((s) => s.id.startsWith('bpf.map.create'));
  assert.deepEqual(create.map((s) => s.argv[s.argv.indexOf('entries') + 1]), ['65536', '123', '1']);
});

test('pod ADD: the pod side, then the host side, the endpoint entry last; DEL undoes it first', () => {
  const steps = [...podSetup(node, pod), endpointUpdate(node, DEFAULT_TOOLS, { ip: pod.ip, ifindex: 9, podMac: pod.podMac, hostMac: pod.hostMac })];
  assert.equal(steps[0]!.id, 'link.veth:pod:eth0');
  assert.deepEqual(steps[0]!.undo, { ns: HOST, mech: 'ip', argv: [DEFAULT_TOOLS.ip, 'link', 'del', pod.hostVeth] });
  assert.equal(steps.at(-1)!.id, 'bpf.map.update:host:testcni_eps:10.244.1.2');
  before(ids(steps), 'neigh:pod:10.244.1.1', 'route:pod:default');
  before(ids(steps), 'tc.qdisc:host:tc0123456789a', 'tc.filter:host:tc0123456789a:ingress');
  assert.deepEqual(steps.at(-1)!.undo!.argv.slice(1, 5), ['map', 'delete', 'pinned', '/sys/fs/bpf/testcni/n1/maps/testcni_eps']);
  const del = podTeardown(node, DEFAULT_TOOLS, pod);
  assert.deepEqual(del[0], steps.at(-1)!.undo, 'without a journal, DEL removes the same entry');
  assert.deepEqual(del[1], steps[0]!.undo);
});

test('a remote node: its block and its address as a /32; removal deletes both; one batch for many', () => {
  const ups = remoteUpdates(node, DEFAULT_TOOLS, { block: '10.244.2.0/24', nodeIp: '198.18.0.2', vtepMac: '02:00:00:00:02:01' });
  assert.deepEqual(ids(ups), ['bpf.map.update:host:testcni_remote:10.244.2.0/24', 'bpf.map.update:host:testcni_remote:198.18.0.2/32']);
  assert.deepEqual(remoteDeletes(node, DEFAULT_TOOLS, ['10.244.2.0/24', '198.18.0.2/32']), ups.map((u) => u.undo));
  const batch = batchInput(ups).split('\n');
  assert.equal(batch.length, 3);
  assert.match(batch[0]!, /^map update pinned \/sys\/fs\/bpf\/testcni\/n1\/maps\/testcni_remote key hex 18 00 00 00 0a f4 02 00 value hex c6 12 00 02 /);
  assert.throws(() => batchInput([{ ns: HOST, mech: 'bpftool', argv: ['/usr/sbin/bpftool', 'map', 'update', 'pinned', '/a b'] }]), /white space/);
});
