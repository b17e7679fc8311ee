// The vxlan eBPF dataplane end to end: two simulated nodes on an underlay bridge, set up by
// exactly the commands of bpf/recipe.ts in plan order (each probe false before and true after,
// as the executor checks), pods on both, then traffic, an underlay capture, DEL and a node
// leaving. Everything lives in namespaces and a bpffs directory this test makes and removes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { sh, addNetns, delNetns, inNetns, NETNS_DIR } from '../helpers/netns.ts';
import { ping } from '../helpers/e2e.ts';
import { bpfSkipReason, bpfScope, BPFFS, VXLAN_OBJECT, readPcap, vxlanOf, parseFrame, startInNetns } from '../helpers/bpf.ts';
import { holds } from '../../planner/predicate.ts';
import { HOST } from '../../model/plan.ts';
import { derivedMac, hostVethName, podMac, hostVethMac } from '../../planner/names.ts';
import { ENDPOINTS, REMOTE, keyArgs, endpointKey } from '../../bpf/maps.ts';
import {
  nodeSetup, nodeAttach, podSetup, endpointUpdate, podTeardown, remoteUpdates, remoteDeletes, batchInput, mapPath,
  DEFAULT_TOOLS, type NodeDataplane, type RecipeStep, type ExecProbe,
} from '../../bpf/recipe.ts';

const VNI = 13190;
const PORT = 8472;
const DEVICE = 'testcni.vxlan';
const UNDERLAY_MTU = 1500;
const MTU = UNDERLAY_MTU - 50;
const ROUTE_PROTOCOL = 151;
const tools = DEFAULT_TOOLS;

const skip = bpfSkipReason(['ethtool', 'tcpdump', 'ping', 'iperf3', 'sysctl', 'iptables']);

test('vxlan eBPF dataplane: two nodes, pods on both, over an underlay bridge', { skip: skip ?? false, timeout: 120_000 }, async (t) => {
  const { prefix, scope, pinRoot, tmp } = bpfScope(t, 'bd');
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

  /** Runs recipe steps as the executor would: skip when the probe holds, else run and require it to hold. */
  const apply = (nodeNs: string, steps: RecipeStep[]) => {
    const path = (ns: string) => (ns === HOST ? join(NETNS_DIR, nodeNs) : ns);
    const applied: string[] = [];
    for (const s of steps) {
      if (s.probe && probe(s.probe, path)) continue;
      sh(['nsenter', `--net=${path(s.ns)}`, '--', ...s.argv], { input: s.input });
      if (s.probe && s.probeHoldsAfter !== false) assert.ok(probe(s.probe, path), `${s.id}: its probe does not hold after it ran`);
      applied.push(s.id);
    }
    return applied;
  };

  interface Node { name: string; ns: string; ip: string; block: string; gateway: string; dp: NodeDataplane; applied: string[] }
  const makeNode = (i: number): Node => {
    const ns = netns(`${prefix}n${i}`);
    const ip = `198.18.0.${i}`;
    inNetns(U, ['ip', 'link', 'add', `u${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', join(NETNS_DIR, ns)]);
    inNetns(U, ['ip', 'link', 'set', `u${i}`, 'master', 'br0', 'up']);
    inNetns(ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    inNetns(ns, ['ip', 'link', 'set', 'eth0', 'mtu', String(UNDERLAY_MTU), 'up']);
    inNetns(ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const name = `node-${i}`;
    const block = `10.244.${i}.0/24`;
    const gateway = `10.244.${i}.1`;
    const dp: NodeDataplane = {
      tools, bpffs: BPFFS, pinDir: `${pinRoot}/${name}`, object: VXLAN_OBJECT, device: DEVICE, mac: derivedMac(`vxlan/${name}`),
      mtu: MTU, port: PORT, vni: VNI, gateway, clusterSubnet: '10.244.0.0/16', routeProtocol: ROUTE_PROTOCOL,
      endpointsSize: 16384, remoteSize: 4096,
    };
    const applied = apply(ns, nodeSetup(dp));
    const ifindex = linkIndex(ns, DEVICE);
    applied.push(...apply(ns, nodeAttach(dp, ifindex)));
    return { name, ns, ip, block, gateway, dp, applied };
  };

  interface Pod { ns: string; ip: string; node: Node; hostVeth: string; containerId: string }
  const pods: Pod[] = [];
  const makePod = (node: Node, j: number): Pod => {
    const ns = netns(`${prefix}p${node.name.slice(-1)}${j}`);
    const containerId = `${prefix}-${node.name}-${j}`;
    const ip = `10.244.${node.name.slice(-1)}.${j + 1}`;
    const p = {
      tools, netns: join(NETNS_DIR, ns), ifName: 'eth0', hostVeth: hostVethName(containerId, 'eth0'),
      podMac: podMac(containerId, 'eth0'), hostMac: hostVethMac(containerId, 'eth0'), ip, gateway: node.gateway,
      mtu: MTU, nodeNetns: node.ns, routeProtocol: ROUTE_PROTOCOL,
    };
    apply(node.ns, podSetup(node.dp, p));
    apply(node.ns, [endpointUpdate(node.dp, tools, { ip, ifindex: linkIndex(node.ns, p.hostVeth), podMac: p.podMac, hostMac: p.hostMac })]);
    const pod = { ns, ip, node, hostVeth: p.hostVeth, containerId };
    pods.push(pod);
    return pod;
  };

  const n1 = makeNode(1);
  const n2 = makeNode(2);
  await t.test('node setup: every step ran on a fresh node; bpffs is one mount for both', () => {
    assert.ok(!n1.applied.includes(`bpffs:host:${BPFFS}`) && !n2.applied.includes(`bpffs:host:${BPFFS}`), 'mounted already (ensureBpffs)');
    for (const n of [n1, n2]) {
      const all = [...nodeSetup(n.dp), ...nodeAttach(n.dp, 1)].map((s) => s.id).filter((id) => id !== `bpffs:host:${BPFFS}`);
      assert.deepEqual(n.applied, all);
    }
    for (const n of [n1, n2]) {
      const link = JSON.parse(inNetns(n.ns, ['ip', '-j', '-d', 'link', 'show', 'dev', DEVICE]).stdout)[0];
      assert.equal(link.address, n.dp.mac);
      assert.equal(link.mtu, MTU);
      assert.ok(link.flags.includes('NOARP'));
      const features = JSON.parse(inNetns(n.ns, ['ethtool', '--json', '-k', DEVICE]).stdout)[0];
      assert.equal(features['tx-checksumming'].active, false);
    }
  });

  const p11 = makePod(n1, 1);
  const p12 = makePod(n1, 2);
  const p21 = makePod(n2, 1);
  // n1 learns n2 one entry at a time; n2 learns n1 through one `bpftool batch` process.
  apply(n1.ns, remoteUpdates(n1.dp, tools, { block: n2.block, nodeIp: n2.ip, vtepMac: n2.dp.mac }));
  const toN1 = remoteUpdates(n2.dp, tools, { block: n1.block, nodeIp: n1.ip, vtepMac: n1.dp.mac });
  inNetns(n2.ns, [tools.bpftool, 'batch', 'file', '-'], { input: batchInput(toN1) });

  await t.test('re-running every step is a no-op: all probes hold', () => {
    for (const [node, steps] of [
      [n1, [...nodeSetup(n1.dp), ...nodeAttach(n1.dp, linkIndex(n1.ns, DEVICE))]],
      [n2, [...nodeSetup(n2.dp), ...nodeAttach(n2.dp, linkIndex(n2.ns, DEVICE)), ...toN1]],
    ] as const) {
      assert.deepEqual(apply(node.ns, [...steps]), []);
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
    assert.ok(ping(p11.ns, n1.ip), 'pod -> node underlay address');
    assert.ok(ping(n1.ns, p11.ip), 'node -> pod (host route via the veth)');
  });

  await t.test('node <-> remote pod, pod <-> remote node', () => {
    assert.ok(ping(n1.ns, p21.ip), 'n1 -> p21 (cluster route into the device, key from the LPM map)');
    assert.ok(ping(p21.ns, n1.ip), 'p21 -> n1');
    assert.ok(ping(p11.ns, n2.ip), 'p11 -> n2');
  });

  await t.test('TCP at full size, same node and across nodes (GSO through the redirects)', async () => {
    for (const [from, to] of [[p11, p12], [p11, p21]] as const) {
      const server = await startInNetns(to.ns, ['iperf3', '-s', '-1', '-p', '5201', '--forceflush'], /Server listening/);
      try {
        const r = JSON.parse(inNetns(from.ns, ['iperf3', '-c', to.ip, '-p', '5201', '-n', '8M', '-J']).stdout);
        // The server stops counting when the client ends the test, a little before the last
        // bytes are read; a path that broke large (GSO) segments would carry next to nothing.
        const bytes = r.end.sum_received.bytes as number;
        assert.equal(r.error, undefined);
        assert.ok(r.end.sum_sent.bytes >= 8 * 1024 * 1024 && bytes >= 4 * 1024 * 1024, `${from.ip} -> ${to.ip}: ${bytes} bytes received`);
      } finally {
        await server.stop();
      }
    }
  });

  await t.test('a pod sending from an address that is not its own is dropped', () => {
    // Replies to the foreign address could not come back anyway: count what reaches the target.
    const arriving = (dst: Pod, src: string) => {
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
    const flows: [Pod | Node, string][] = [[p11, p21.ip], [p21, p12.ip], [n1, p21.ip], [p11, n2.ip]];
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
      assert.ok([n1.ip, n2.ip].includes(vx.outer.src) && [n1.ip, n2.ip].includes(vx.outer.dst), `outer ${vx.outer.src} -> ${vx.outer.dst}`);
      assert.equal(vx.outer.udpChecksum, 0, 'zero outer UDP checksum (RFC 7348)');
      const [sender, receiver] = vx.outer.src === n1.ip ? [n1, n2] : [n2, n1];
      assert.deepEqual([vx.inner.srcMac, vx.inner.dstMac], [sender.dp.mac, receiver.dp.mac], 'inner MACs: the sender\'s and the receiver\'s VXLAN devices');
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
      inNetns(U, ['ip', 'link', 'add', dev, 'type', 'vxlan', 'id', String(vni), 'remote', n1.ip, 'local', '198.18.0.254', 'dstport', String(PORT), 'nolearning']);
      inNetns(U, ['ip', 'link', 'set', dev, 'up']);
      inNetns(U, ['ip', 'route', 'replace', `${p11.ip}/32`, 'dev', dev]);
      inNetns(U, ['ip', 'neigh', 'replace', p11.ip, 'lladdr', n1.dp.mac, 'dev', dev, 'nud', 'permanent']);
      const before = rxPackets(p11.ns);
      inNetns(U, ['ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '1', p11.ip], { allowFail: true });
      inNetns(U, ['ip', 'link', 'del', dev]);
      return rxPackets(p11.ns) - before;
    };
    assert.equal(delivered(999), 0, 'VNI 999 reached the pod');
    assert.ok(delivered(VNI) >= 3, `VNI ${VNI} did not reach the pod`);
  });

  await t.test('pod DEL: endpoint entry then veth; the pod is unreachable and nothing of it is left', () => {
    for (const c of podTeardown(n1.dp, tools, p12)) inNetns(n1.ns, c.argv);
    assert.notEqual(inNetns(n1.ns, [tools.bpftool, '-j', 'map', 'lookup', 'pinned', mapPath(n1.dp, ENDPOINTS), ...keyArgs(endpointKey(p12.ip))], { allowFail: true }).code, 0);
    assert.ok(!linkExists(n1.ns, p12.hostVeth));
    assert.deepEqual(JSON.parse(inNetns(n1.ns, ['ip', '-j', 'route', 'show', `${p12.ip}/32`]).stdout), []);
    assert.notEqual(inNetns(p11.ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', p12.ip], { allowFail: true }).code, 0);
    assert.notEqual(inNetns(p21.ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', p12.ip], { allowFail: true }).code, 0);
    // DEL again: each command fails on what is gone, which the probes report as done.
    for (const c of podTeardown(n1.dp, tools, p12)) assert.notEqual(inNetns(n1.ns, c.argv, { allowFail: true }).code, 0);
    assert.ok(ping(p11.ns, p21.ip), 'the other pods are untouched');
  });

  await t.test('a departed node: its prefixes removed, its pods unreachable', () => {
    for (const c of remoteDeletes(n1.dp, tools, [n2.block, `${n2.ip}/32`])) inNetns(n1.ns, c.argv);
    const dump = JSON.parse(inNetns(n1.ns, [tools.bpftool, '-j', 'map', 'dump', 'pinned', mapPath(n1.dp, REMOTE)]).stdout);
    assert.deepEqual(dump, []);
    assert.notEqual(inNetns(p11.ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', p21.ip], { allowFail: true }).code, 0);
    assert.notEqual(inNetns(n1.ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', p21.ip], { allowFail: true }).code, 0);
  });

  await t.test('teardown removes the namespaces, links, filters and pins', () => {
    scope.close();
    const left = sh(['ip', 'netns', 'list']).stdout.split('\n').filter((l) => l.startsWith(prefix));
    assert.deepEqual(left, []);
    assert.ok(!existsSync(pinRoot), `${pinRoot} is left`);
  });
});

function probe(p: ExecProbe, path: (ns: string) => string): boolean {
  const r = sh(['nsenter', `--net=${path(p.ns)}`, '--', ...p.argv], { allowFail: true });
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch { /* not JSON */ }
  return holds(p.expect, { exitCode: r.code, stdout: r.stdout, json });
}

function linkIndex(ns: string, dev: string): number {
  return JSON.parse(inNetns(ns, ['ip', '-j', 'link', 'show', 'dev', dev]).stdout)[0].ifindex;
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
