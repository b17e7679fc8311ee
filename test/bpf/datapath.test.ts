// The vxlan eBPF dataplane end to end: two simulated nodes on an underlay bridge, set up by the
// vxlan mode's own plans through the real Executor (node plan: observe, plan, converge, every
// probe holding after its step and nothing left to do after; pods: compiled ADD plans, applied
// and then CHECKed), then traffic, an underlay capture, DEL, GC's sweep and a node leaving.
// Everything lives in namespaces and a bpffs directory this test makes and removes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { sh, addNetns, delNetns, inNetns, NETNS_DIR } from '../helpers/netns.ts';
import { ping } from '../helpers/e2e.ts';
import { bpfSkipReason, bpfScope, BPFFS, readPcap, vxlanOf, parseFrame, startInNetns, removePins } from '../helpers/bpf.ts';
import { simNode, addPod, delPod, VXLAN, type SimNode, type SimPod } from '../helpers/sim-node.ts';
import { ENDPOINTS, REMOTE, keyArgs, endpointKey } from '../../bpf/maps.ts';
import { dataplaneFor } from '../../planner/modes/vxlan/node.ts';
import { mapPath, networkPinRoot, txOffload } from '../../planner/modes/vxlan/dataplane.ts';
import { release } from 'node:os';

const VNI = 13190;
const PORT = 8472;
const DEVICE = 'testcni.vxlan';
const UNDERLAY_MTU = 1500;
const MTU = UNDERLAY_MTU - 50;

const skip = bpfSkipReason(['ethtool', 'tcpdump', 'ping', 'iperf3', 'sysctl', 'iptables', 'mv', 'mkdir', 'rm']);

test('vxlan eBPF dataplane: two nodes, pods on both, over an underlay bridge', { skip: skip ?? false, timeout: 120_000 }, async (t) => {
  const { prefix, scope, tmp } = bpfScope(t, 'bd');
  const netns = (name: string) => {
    scope.defer(() => delNetns(name));
    addNetns(name);
    // No IPv6 chatter: the capture below must hold nothing but what the test sends.
    inNetns(name, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    return name;
  };

  // Underlay: a bridge in its own namespace, one port per node, 198.18.0.0/24.
  const U = netns(`${prefix}u`);
  inNetns(U, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
  inNetns(U, ['ip', 'addr', 'add', '198.18.0.254/24', 'dev', 'br0']);
  inNetns(U, ['ip', 'link', 'set', 'br0', 'up']);

  const makeNode = (i: number): SimNode => {
    const ns = netns(`${prefix}n${i}`);
    const ip = `198.18.0.${i}`;
    inNetns(U, ['ip', 'link', 'add', `u${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', join(NETNS_DIR, ns)]);
    inNetns(U, ['ip', 'link', 'set', `u${i}`, 'master', 'br0', 'up']);
    inNetns(ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    inNetns(ns, ['ip', 'link', 'set', 'eth0', 'mtu', String(UNDERLAY_MTU), 'up']);
    const stateDir = join(tmp, `n${i}`);
    mkdirSync(stateDir, { recursive: true });
    const node = simNode(scope, { name: `node-${i}`, ns, underlayIp: ip, block: `10.244.${i}.0/24`, network: prefix, subnet: '10.244.0.0/16', stateDir });
    scope.defer(() => removePins(networkPinRoot(node.config)));
    return node;
  };

  const pods: SimPod[] = [];
  const makePod = async (node: SimNode, j: number): Promise<SimPod> => {
    const i = node.name.slice(-1);
    const name = netns(`${prefix}p${i}${j}`);
    const pod = await addPod(node, { name, path: join(NETNS_DIR, name), containerId: `${prefix}-${node.name}-${j}`, ip: `10.244.${i}.${j + 1}` });
    pods.push(pod);
    return pod;
  };

  const n1 = makeNode(1);
  const n2 = makeNode(2);
  const registry = [n1.record, n2.record];
  const applied = new Map<string, string[]>();
  for (const n of [n1, n2]) applied.set(n.name, await n.reconcile(registry));

  await t.test('node plan: a fresh node gets everything, in order; bpffs is one mount for both; then nothing is left to do', async () => {
    for (const n of [n1, n2]) {
      const ids = applied.get(n.name)!;
      assert.ok(!ids.includes(`bpffs:host:${BPFFS}`), 'mounted already (ensureBpffs)');
      const order = ['link.vxlan:host:testcni.vxlan', 'ethtool:host:testcni.vxlan:tx', 'addr:host:testcni.vxlan', 'link.up:host:testcni.vxlan',
        `route:host:10.244.0.0/16`, 'bpf.map.create:host:testcni_eps', 'bpf.map.create:host:testcni_cfg', 'bpf.map.update:host:testcni_cfg',
        'tc.filter:host:testcni.vxlan:ingress', 'tc.filter:host:testcni.vxlan:egress'];
      for (const id of order) assert.ok(ids.includes(id), `${n.name}: ${id} in ${ids.join(', ')}`);
      const at = order.map((id) => ids.indexOf(id));
      assert.deepEqual(at, [...at].sort((a, b) => a - b), `${n.name}: in plan order`);
      assert.equal(ids.filter((id) => id.startsWith('bpf.map.update:host:testcni_remote:')).length, 2, 'the other node: its block and its address');
      assert.deepEqual(await n.nodePlan(registry), [], `${n.name}: converged`);
      const link = JSON.parse(inNetns(n.ns, ['ip', '-j', '-d', 'link', 'show', 'dev', DEVICE]).stdout)[0];
      assert.equal(link.address, dataplaneFor({ ...n, self: n.record }).mac);
      assert.equal(link.mtu, MTU);
      assert.ok(link.flags.includes('NOARP'));
      const features = JSON.parse(inNetns(n.ns, ['ethtool', '--json', '-k', DEVICE]).stdout)[0];
      assert.equal(features['tx-checksumming'].active, txOffload('auto', release()).on, 'auto: on from Linux 5.7');
    }
  });

  const p11 = await makePod(n1, 1);
  const p12 = await makePod(n1, 2);
  const p21 = await makePod(n2, 1);

  await t.test('pod ADD: the plan applied holds in full (CHECK), node steps skipped as in effect', async () => {
    for (const p of [p11, p12, p21]) {
      assert.deepEqual(await p.node.executor.check(p.plan), [], `${p.name}: CHECK`);
    }
  });

  // Pod to pod, the programs forward: the nodes' IP stacks forward nothing.
  const stackForwards = () => forwardedDatagrams(n1.ns) + forwardedDatagrams(n2.ns);

  await t.test('same-node pod <-> pod (bpf_redirect_peer, not the stack)', () => {
    const before = stackForwards();
    assert.ok(ping(p11.ns, p12.ip), 'p11 -> p12');
    assert.ok(ping(p12.ns, p11.ip), 'p12 -> p11');
    assert.equal(stackForwards(), before);
  });

  await t.test('cross-node pod <-> pod (VXLAN, not the stack)', () => {
    const before = stackForwards();
    assert.ok(ping(p11.ns, p21.ip), 'p11 -> p21');
    assert.ok(ping(p21.ns, p12.ip), 'p21 -> p12');
    assert.equal(stackForwards(), before);
  });

  await t.test('pod <-> its own node (gateway address, underlay address)', () => {
    assert.ok(ping(p11.ns, n1.gateway), 'pod -> gateway');
    assert.ok(ping(p11.ns, n1.record.underlayIp), 'pod -> node underlay address');
    assert.ok(ping(n1.ns, p11.ip), 'node -> pod (host route via the veth)');
  });

  await t.test('node <-> remote pod, pod <-> remote node', () => {
    assert.ok(ping(n1.ns, p21.ip), 'n1 -> p21 (cluster route into the device, key from the LPM map)');
    assert.ok(ping(p21.ns, n1.record.underlayIp), 'p21 -> n1');
    assert.ok(ping(p11.ns, n2.record.underlayIp), 'p11 -> n2');
  });

  await t.test('TCP at full size, same node and across nodes (GSO through the redirects)', async () => {
    for (const [from, to] of [[p11, p12], [p11, p21]] as const) {
      const server = await startInNetns(to.ns, ['iperf3', '-s', '-1', '-p', '5201', '--forceflush'], /Server listening/);
      try {
        const r = JSON.parse(inNetns(from.ns, ['iperf3', '-c', to.ip, '-p', '5201', '-n', '8M', '-J']).stdout);
        // The server stops counting when the client ends the test, before the last bytes are
        // read (under load 3.7 of 8 MiB were counted); a path that broke large (GSO) segments
        // would carry next to nothing.
        const bytes = r.end.sum_received.bytes as number;
        assert.equal(r.error, undefined);
        assert.ok(r.end.sum_sent.bytes >= 8 * 1024 * 1024 && bytes >= 1024 * 1024, `${from.ip} -> ${to.ip}: ${bytes} bytes received`);
      } finally {
        await server.stop();
      }
    }
  });

  await t.test('a pod sending from an address that is not its own is dropped', () => {
    // Replies to the foreign address could not come back anyway: count what reaches the target.
    const arriving = (dst: SimPod, src: string) => {
      const before = rxPackets(dst.ns);
      inNetns(p11.ns, ['ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '1', '-I', src, dst.ip], { allowFail: true });
      return rxPackets(dst.ns) - before;
    };
    inNetns(p11.ns, ['ip', 'addr', 'add', '10.244.1.99/32', 'dev', 'eth0']);
    try {
      for (const dst of [p12, p21]) {
        assert.equal(arriving(dst, '10.244.1.99'), 0, `from 10.244.1.99 to ${dst.ip}`);
        assert.ok(arriving(dst, p11.ip) >= 3, `from its own address to ${dst.ip}`);
      }
    } finally {
      inNetns(p11.ns, ['ip', 'addr', 'del', '10.244.1.99/32', 'dev', 'eth0']);
    }
  });

  await t.test('Services: replies of connections the node DNATs (as kube-proxy does) go back through its stack', async () => {
    for (const [vip, backend] of [['10.96.0.10', p12], ['10.96.0.11', p21]] as const) {
      const rule = ['PREROUTING', '-d', `${vip}/32`, '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', `${backend.ip}:5201`];
      inNetns(n1.ns, ['iptables', '-w', '5', '-t', 'nat', '-A', ...rule]);
      const server = await startInNetns(backend.ns, ['iperf3', '-s', '-1', '-p', '5201', '--forceflush'], /Server listening/);
      try {
        const r = inNetns(p11.ns, ['iperf3', '-c', vip, '-p', '80', '-n', '1M', '-J', '--connect-timeout', '2000'], { allowFail: true });
        const out = JSON.parse(r.stdout || '{}');
        assert.equal(out.error, undefined, `${vip} -> ${backend.ip}`);
        assert.ok(out.end?.sum_sent?.bytes >= 1024 * 1024, `${vip} -> ${backend.ip}: ${r.stdout.slice(0, 200)}`);
      } finally {
        await server.stop();
        inNetns(n1.ns, ['iptables', '-w', '5', '-t', 'nat', '-D', ...rule]);
      }
    }
  });

  await t.test('the underlay carries cross-node pod traffic only as VXLAN with the configured VNI', async () => {
    const file = join(tmp, 'underlay.pcap');
    const capture = await startInNetns(U, ['tcpdump', '-i', 'br0', '-n', '--immediate-mode', '-U', '-s', '256', '-w', file], /listening on/);
    scope.defer(() => { try { process.kill(capture.pid, 'SIGKILL'); } catch { /* gone */ } });
    const flows: [{ ns: string }, string][] = [[p11, p21.ip], [p21, p12.ip], [n1, p21.ip], [p11, n2.record.underlayIp]];
    let received = 0;
    try {
      for (const [from, dst] of flows) {
        const r = inNetns(from.ns, ['ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '1', dst], { allowFail: true });
        assert.equal(r.code, 0, `${from.ns} -> ${dst}`);
        received += Number(r.stdout.match(/(\d+) received/)?.[1] ?? 0);
      }
    } finally {
      await capture.stop();
    }
    const frames = readPcap(file);
    const podIps = new Set(pods.map((p) => p.ip));
    let echoes = 0;
    for (const frame of frames) {
      const f = parseFrame(frame);
      if (f.ethertype === 0x0806) continue; // ARP between underlay addresses
      const vx = vxlanOf(frame, PORT);
      assert.ok(vx, `not VXLAN on the underlay: ${JSON.stringify({ ...f, ip: f.ip && { ...f.ip, body: undefined } })}`);
      assert.equal(vx.vni, VNI);
      assert.ok([n1.record.underlayIp, n2.record.underlayIp].includes(vx.outer.src) && [n1.record.underlayIp, n2.record.underlayIp].includes(vx.outer.dst), `outer ${vx.outer.src} -> ${vx.outer.dst}`);
      assert.equal(vx.outer.udpChecksum, 0, 'zero outer UDP checksum (RFC 7348)');
      const [sender, receiver] = vx.outer.src === n1.record.underlayIp ? [n1, n2] : [n2, n1];
      assert.deepEqual([vx.inner.srcMac, vx.inner.dstMac], [macOf(sender), macOf(receiver)], 'inner MACs: the sender\'s and the receiver\'s VXLAN devices');
      assert.ok(vx.inner.ip, 'inner IPv4');
      if (vx.inner.ip.proto === 1) echoes++;
      assert.ok(podIps.has(vx.inner.ip.src) || podIps.has(vx.inner.ip.dst), `inner ${vx.inner.ip.src} -> ${vx.inner.ip.dst}`);
    }
    // Each reply ping counted crossed the underlay once, as did its request.
    assert.ok(echoes >= 2 * received && received >= flows.length, `${echoes} echo requests and replies in VXLAN, ${received} replies received`);
  });

  await t.test('a VXLAN packet with another VNI is dropped; the same with ours is delivered', () => {
    const delivered = (vni: number) => {
      const dev = `vx${vni}`;
      inNetns(U, ['ip', 'link', 'add', dev, 'type', 'vxlan', 'id', String(vni), 'remote', n1.record.underlayIp, 'local', '198.18.0.254', 'dstport', String(PORT), 'nolearning']);
      inNetns(U, ['ip', 'link', 'set', dev, 'up']);
      inNetns(U, ['ip', 'route', 'replace', `${p11.ip}/32`, 'dev', dev]);
      inNetns(U, ['ip', 'neigh', 'replace', p11.ip, 'lladdr', macOf(n1), 'dev', dev, 'nud', 'permanent']);
      const before = rxPackets(p11.ns);
      inNetns(U, ['ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '1', p11.ip], { allowFail: true });
      inNetns(U, ['ip', 'link', 'del', dev]);
      return rxPackets(p11.ns) - before;
    };
    assert.equal(delivered(999), 0, 'VNI 999 reached the pod');
    assert.ok(delivered(VNI) >= 3, `VNI ${VNI} did not reach the pod`);
  });

  const lookup = (n: SimNode, ip: string) =>
    inNetns(n.ns, ['bpftool', '-j', 'map', 'lookup', 'pinned', mapPath(dataplaneFor({ ...n, self: n.record }), ENDPOINTS), ...keyArgs(endpointKey(ip))], { allowFail: true }).code;

  await t.test('pod DEL: endpoint entry then veth; the pod is unreachable and nothing of it is left; DEL again is done', async () => {
    assert.deepEqual(await delPod(p12), [`undo:bpf.map.update:host:testcni_eps:${p12.ip}`, 'undo:link.veth:pod:eth0']);
    assert.notEqual(lookup(n1, p12.ip), 0, 'the endpoint entry is gone');
    assert.ok(!linkExists(n1.ns, p12.hostVeth));
    assert.deepEqual(JSON.parse(inNetns(n1.ns, ['ip', '-j', 'route', 'show', `${p12.ip}/32`]).stdout), []);
    assert.notEqual(inNetns(p11.ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', p12.ip], { allowFail: true }).code, 0);
    assert.notEqual(inNetns(p21.ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', p12.ip], { allowFail: true }).code, 0);
    // DEL again: each undo finds nothing, which its probe reports as done.
    assert.equal((await delPod(p12)).length, 2);
    assert.ok(ping(p11.ns, p21.ip), 'the other pods are untouched');
  });

  await t.test('an endpoint whose host veth vanished (a DEL that never ran): the GC sweep and the node plan remove it', async () => {
    const p13 = await makePod(n1, 3);
    inNetns(n1.ns, ['ip', 'link', 'del', 'dev', p13.hostVeth]);
    assert.equal(lookup(n1, p13.ip), 0, 'the stale entry is there');
    const sweep = VXLAN.gc!;
    const stale = sweep.plan(n1.config, n1.facts, await n1.query(sweep.observe(n1.config, n1.facts)));
    assert.deepEqual(stale.map((s) => s.id), [`bpf.map.delete:host:testcni_eps:${p13.ip}`]);
    assert.deepEqual((await n1.nodePlan(registry)).map((s) => s.id), stale.map((s) => s.id), 'the node plan finds the same');
    assert.deepEqual((await n1.executor.converge(stale)).errors, []);
    assert.notEqual(lookup(n1, p13.ip), 0, 'removed');
    assert.ok(lookup(n1, p11.ip) === 0, 'live pods keep theirs');
    assert.deepEqual(await n1.nodePlan(registry), []);
  });

  await t.test('a departed node: its prefixes removed, its pods unreachable', async () => {
    assert.deepEqual(await n1.reconcile([n1.record]), [`bpf.map.delete:host:testcni_remote:${n2.record.block}`, `bpf.map.delete:host:testcni_remote:${n2.record.underlayIp}/32`]);
    const dump = JSON.parse(inNetns(n1.ns, ['bpftool', '-j', 'map', 'dump', 'pinned', mapPath(dataplaneFor({ ...n1, self: n1.record }), REMOTE)]).stdout);
    assert.deepEqual(dump, []);
    assert.notEqual(inNetns(p11.ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', p21.ip], { allowFail: true }).code, 0);
    assert.notEqual(inNetns(n1.ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', p21.ip], { allowFail: true }).code, 0);
  });

  await t.test('teardown removes the namespaces, links, filters and pins', () => {
    scope.close();
    const left = sh(['ip', 'netns', 'list']).stdout.split('\n').filter((l) => l.startsWith(prefix));
    assert.deepEqual(left, []);
    assert.ok(!existsSync(networkPinRoot(n1.config)), `${networkPinRoot(n1.config)} is left`);
  });
});

function macOf(n: SimNode): string {
  return dataplaneFor({ ...n, self: n.record }).mac;
}

function linkExists(ns: string, dev: string): boolean {
  return inNetns(ns, ['ip', '-j', 'link', 'show', 'dev', dev], { allowFail: true }).code === 0;
}

function rxPackets(ns: string): number {
  return JSON.parse(inNetns(ns, ['ip', '-s', '-j', 'link', 'show', 'dev', 'eth0']).stdout)[0].stats64.rx.packets;
}

/** Ip ForwDatagrams of a namespace (/proc/net is the reader's namespace). */
function forwardedDatagrams(ns: string): number {
  const lines = inNetns(ns, ['cat', '/proc/net/snmp']).stdout.split('\n').filter((l) => l.startsWith('Ip: '));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  return Number(values![names!.indexOf('ForwDatagrams')]);
}
