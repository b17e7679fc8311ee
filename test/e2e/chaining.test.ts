// testcni as the first plugin of a chain with the reference portmap, bandwidth and tuning plugins
// (Debian's containernetworking-plugins: spec <= 1.0.0), run through ADD, CHECK and DEL the way
// libcni runs a conflist (test/helpers/conflist.ts), per mode, each on its node (mode-nodes.ts).
// host-gw and ipip: each plugin does its part on top of testcni's result, CHECK passes, and DEL
// leaves the node as it was. vxlan: portmap and tuning likewise; bandwidth cannot shape a vxlan
// pod (its egress needs the host veth's ingress hook, which vxlan's clsact holds; its ingress tbf
// is bypassed by bpf_redirect_peer). macvlan and ipvlan (a child link of the node's device, no
// veth): tuning works; portmap's rules go in, but a hostPort cannot reach the pod (the node sends
// the translated packet out of the master, whose children never hear it); bandwidth refuses (it
// shapes the node side of a veth). The README says so, and these tests hold it true.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { rootSkipReason, uniquePrefix, inNetns, toolPath } from '../helpers/netns.ts';
import { startInNetns } from '../helpers/bpf.ts';
import { Scope, readJournal, linkNames, BRIDGE } from '../helpers/e2e.ts';
import { ConflistRunner, ChainError, makeBinDir, toConflist, REFERENCE_CNI_DIR, type Attachment } from '../helpers/conflist.ts';
import { modeNode, labModeNode, modeKernelSkipReason, modeNodeState, type ModeNode } from '../helpers/mode-nodes.ts';
import { labSkipReason } from '../helpers/lab.ts';
import { bgpSkipReason } from '../helpers/bgp.ts';

const has = (tool: string) => toolPath(tool) !== null;
const CHAINED = ['portmap', 'bandwidth', 'tuning'];
const missing = CHAINED.find((p) => !existsSync(join(REFERENCE_CNI_DIR, p)));
const skip = rootSkipReason(['iptables', 'iptables-save', 'tc', 'ping'])
  ?? (missing ? `needs ${join(REFERENCE_CNI_DIR, missing)} (containernetworking-plugins)` : undefined)
  ?? undefined;

const HOST_PORT = 18080;
const CONTAINER_PORT = 8080;
// bandwidth's rates are bits/s and bursts bits; tc reports tbf rates in bytes/s
const INGRESS = { rate: 8_000_000, burst: 80_000 };
const EGRESS = { rate: 16_000_000, burst: 160_000 };
const SOMAXCONN = '321';

type Json = Record<string, unknown>;

/** The node's qdiscs, every link (the bandwidth plugin adds its own ifb device). */
function qdiscs(ns: string): Json[] {
  return (JSON.parse(inNetns(ns, ['tc', '-j', 'qdisc', 'show']).stdout || '[]') as Json[])
    .map(({ handle: _h, refcnt: _r, ...q }) => q);
}

function snapshot(m: ModeNode) {
  return { ...modeNodeState(m), qdiscs: qdiscs(m.node.name) };
}

/** Starts a TCP server in the pod's netns that answers every connection with `token`. */
async function podServer(scope: Scope, podNetns: string, token: string): Promise<void> {
  const code = `require('node:net').createServer((s) => s.end(${JSON.stringify(token)})).listen(${CONTAINER_PORT}, '0.0.0.0', () => console.log('listening'))`;
  const child = spawn('nsenter', [`--net=${podNetns}`, '--', process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  scope.defer(() => {
    try {
      process.kill(child.pid!, 'SIGKILL'); // nsenter exec'd node: the pid is the server's
    } catch { /* gone */ }
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`pod server exited ${c}`)));
  });
}

/** Connects from `ns` to ip:port and returns what the server sent ('' when nothing came). */
function fetchFrom(ns: string, ip: string, port: number): string {
  const code = `const s = require('node:net').connect(${port}, ${JSON.stringify(ip)}); let d = '';
    s.setTimeout(2000, () => { s.destroy(); process.exit(3); });
    s.on('data', (b) => (d += b)); s.on('end', () => { process.stdout.write(d); process.exit(0); }); s.on('error', () => process.exit(2));`;
  return inNetns(ns, [process.execPath, '-e', code], { allowFail: true }).stdout;
}

const PORT_MAPPINGS = [{ hostPort: HOST_PORT, containerPort: CONTAINER_PORT, protocol: 'tcp' }];
const PORTMAP = { type: 'portmap', capabilities: { portMappings: true } };
const BANDWIDTH = { type: 'bandwidth', ingressRate: INGRESS.rate, ingressBurst: INGRESS.burst, egressRate: EGRESS.rate, egressBurst: EGRESS.burst };
const TUNING = { type: 'tuning', sysctl: { 'net.core.somaxconn': SOMAXCONN } };

/** A conflist of testcni (this node's config) and `next`, run like libcni in the node. */
function chainOn(scope: Scope, m: ModeNode, next: Json[], tag = '') {
  const dir = join(m.node.dir, `chain${tag}`);
  const binDir = makeBinDir(join(dir, 'bin'));
  mkdirSync(join(dir, 'cache'));
  const chain = new ConflistRunner(toConflist(m.config({ cniVersion: '1.0.0' }), next), { nodeNs: m.node.name, pluginDirs: [binDir, REFERENCE_CNI_DIR], cacheDir: join(dir, 'cache') });
  const attachment = (name: string, netns: string): Attachment => ({
    containerId: `${scope.prefix}-${name}`,
    netns,
    args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'e2e', K8S_POD_NAME: name },
    capabilityArgs: { portMappings: PORT_MAPPINGS },
  });
  return { chain, attachment };
}

/** chainOn, then the chain once through: it makes what the plugins keep on the node for later
 *  pods (testcni's node state, portmap's top-level chains, forwarding and route_localnet), so DEL
 *  must return the node to `before`. */
function warmChainOn(scope: Scope, m: ModeNode, next: Json[]) {
  const c = chainOn(scope, m, next);
  const warmPod = scope.pod('w');
  must('warm-up ADD', () => c.chain.add(c.attachment('warm', warmPod.path)));
  must('warm-up DEL', () => c.chain.del(c.attachment('warm', warmPod.path)));
  return { ...c, before: snapshot(m) };
}

function must<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ChainError) assert.fail(`${what}: ${e.message}`);
    throw e;
  }
}

/** CHECK of each plugin; portmap up to 1.1.x checks an IPv6 DNAT chain for an IPv4-only pod
 *  wherever ip6tables works, so its CHECK fails after any ADD (containernetworking/plugins#819,
 *  fixed upstream later): accepted only as exactly that failure; a fixed portmap must pass. */
function checkChain(t: { diagnostic(m: string): void }, chain: ConflistRunner, att: Attachment, types: string[]): void {
  const runs = chain.checkEach(att);
  assert.deepEqual(runs.map((r) => `${r.type} ${r.command}`), types.map((x) => `${x} CHECK`));
  for (const r of runs.filter((x) => x.type !== 'portmap')) assert.equal(r.code, 0, `${r.type} CHECK: ${r.stdout} ${r.stderr.slice(0, 500)}`);
  const portmap = runs.find((r) => r.type === 'portmap');
  if (portmap && portmap.code !== 0) {
    assert.match(String(portmap.json?.msg), /^could not check ipv6 dnat: chain CNI-DN-\w+ not found/, `portmap CHECK: ${portmap.stdout}`);
    t.diagnostic('portmap CHECK failed with the known upstream IPv6 bug (containernetworking/plugins#819)');
  }
  // the whole chain as libcni runs it stops at portmap, or nowhere once portmap is fixed
  let stoppedAt: string | null = null;
  try {
    chain.check(att);
  } catch (e) {
    if (!(e instanceof ChainError)) throw e;
    stoppedAt = e.run.type;
  }
  assert.equal(stoppedAt, portmap && portmap.code !== 0 ? 'portmap' : null, 'a libcni-style CHECK fails only where portmap does');
}

/** The veth modes, each on its node: host-gw and vxlan wired to a node network (file IPAM);
 *  ipip (ipipMode never: this kernel has no IPIP device) on the first node of a 2-node lab, with
 *  its agent and BIRD, cluster IPAM. vxlan without bandwidth (its own test below). */
const VETH_MODES: { mode: string; skip: string | undefined; bandwidth: boolean; node(scope: Scope, t: { after(fn: () => Promise<void>): void }): Promise<ModeNode> }[] = [
  { mode: 'host-gw', skip, bandwidth: true, node: async (scope) => modeNode(scope, 'host-gw') },
  { mode: 'vxlan', skip: skip ?? modeKernelSkipReason('vxlan') ?? undefined, bandwidth: false, node: async (scope) => modeNode(scope, 'vxlan') },
  { mode: 'ipip', skip: skip ?? labSkipReason() ?? bgpSkipReason(), bandwidth: true, node: (_scope, t) => labModeNode('ipip', { 'ipip-mode': 'never' }, t) },
];

for (const { mode, skip: modeSkip, bandwidth, node: makeNode } of VETH_MODES) test(`${mode}${mode === 'ipip' ? ' (never, lab)' : ''}: testcni + portmap${bandwidth ? ' + bandwidth' : ''} + tuning: ADD, CHECK, DEL like libcni (cniVersion 1.0.0)`, { skip: modeSkip, timeout: 90_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('ch'));
  const m = await makeNode(scope, t);
  const { node } = m;
  // another host on the node's network (the wire): the client of the port mapping
  const client = m.wire;
  const NODE_IP = m.nodeIp;
  const plugins = bandwidth ? [PORTMAP, BANDWIDTH, TUNING] : [PORTMAP, TUNING];
  const types = ['testcni', ...plugins.map((p) => p.type)];
  const { chain, attachment, before } = warmChainOn(scope, m, plugins);
  const run = must;

  const pod = scope.pod('0');
  const att = attachment('pod', pod.path);
  const hostVeth = m.hostIf(att.containerId)!;
  let podIp = '';

  await t.test('ADD: every plugin builds on testcni\'s result', () => {
    const result = run('ADD', () => chain.add(att));
    assert.deepEqual(chain.runs.slice(-types.length).map((r) => `${r.type} ${r.command}`), types.map((x) => `${x} ADD`));
    // what the chained plugins read from prevResult
    const ifs = result.interfaces as { name: string; sandbox?: string }[];
    const ips = result.ips as { address: string; interface: number }[];
    assert.ok(ifs.some((i) => i.name === hostVeth && i.sandbox === undefined), 'the host veth is in the result (bandwidth would shape it)');
    const podIf = ips[0]!.interface;
    assert.deepEqual(ifs[podIf], { ...ifs[podIf], name: 'eth0', sandbox: pod.path }, 'the address is indexed to eth0 in the pod netns');
    podIp = ips[0]!.address.split('/')[0]!;
    assert.equal(chain.cachedResult(att)?.cniVersion, '1.0.0');
  });

  await t.test('portmap: the node\'s hostPort reaches a server in the pod from another host', async () => {
    assert.ok(podIp, 'ADD gave an address');
    await podServer(scope, pod.path, 'hello from the pod');
    assert.equal(fetchFrom(pod.name, '127.0.0.1', CONTAINER_PORT), 'hello from the pod', 'the server answers inside the pod');
    assert.equal(fetchFrom(client, NODE_IP, HOST_PORT), 'hello from the pod', `${NODE_IP}:${HOST_PORT} from the client reaches ${podIp}:${CONTAINER_PORT}`);
    assert.equal(fetchFrom(pod.name, NODE_IP, HOST_PORT), 'hello from the pod', 'the pod reaches itself through the node\'s hostPort (hairpin)');
    const nat = inNetns(node.name, ['iptables-save', '-t', 'nat']).stdout;
    assert.match(nat, new RegExp(`--to-destination ${podIp.replace(/\./g, '\\.')}:${CONTAINER_PORT}`), 'a DNAT rule to the pod');
  });

  if (bandwidth) await t.test('bandwidth: the host veth and the ifb device carry tbf at the configured rates', () => {
    const ingress = (JSON.parse(inNetns(node.name, ['tc', '-j', 'qdisc', 'show', 'dev', hostVeth]).stdout) as Json[]);
    const tbf = ingress.find((q) => q.kind === 'tbf') as { options: { rate: number } } | undefined;
    assert.ok(tbf, `tbf on ${hostVeth}: ${JSON.stringify(ingress)}`);
    assert.equal(tbf.options.rate, INGRESS.rate / 8, 'ingress rate (bytes/s)');
    assert.ok(ingress.some((q) => q.kind === 'ingress'), 'an ingress qdisc redirecting the pod\'s egress to the ifb device');
    const egress = qdiscs(node.name).filter((q) => q.kind === 'tbf' && q.dev !== hostVeth) as { dev: string; options: { rate: number } }[];
    assert.equal(egress.length, 1, 'one more tbf: on the ifb device');
    assert.equal(egress[0]!.options.rate, EGRESS.rate / 8, 'egress rate (bytes/s)');
  });

  await t.test('tuning: the sysctl is set in the pod', () => {
    assert.equal(inNetns(pod.name, ['sysctl', '-n', 'net.core.somaxconn']).stdout.trim(), SOMAXCONN);
  });

  await t.test('CHECK: every plugin agrees with the cached result (portmap 1.1.1 cannot: upstream bug)', () => {
    checkChain(t, chain, att, types);
  });

  await t.test('DEL (reverse order), then a second DEL without netns, leave nothing behind', () => {
    run('DEL', () => chain.del(att));
    assert.deepEqual(chain.runs.slice(-types.length).map((r) => `${r.type} ${r.command}`), [...types].reverse().map((x) => `${x} DEL`));
    run('second DEL', () => chain.del({ ...att, netns: '' }));
    const after = snapshot(m);
    assert.deepEqual(after.node, before.node, 'node links (veth, ifb), addresses, routes, neighbours and iptables (portmap) as before');
    assert.deepEqual(after.qdiscs, before.qdiscs, 'tc qdiscs as before');
    assert.deepEqual(after.state, before.state, 'no journal');
    assert.deepEqual(after.ipam, before.ipam, 'no reservation');
    assert.equal(readJournal(node, att.containerId), null);
    assert.equal(m.reservation(podIp), undefined, 'the address is free');
    assert.ok(!linkNames(node.name).includes(hostVeth));
    if (mode === 'host-gw') assert.ok(linkNames(node.name).includes(BRIDGE), 'the bridge (node scope) stays');
    assert.equal(chain.cachedResult(att), null, 'the cached result is gone');
    assert.notEqual(fetchFrom(client, NODE_IP, HOST_PORT), 'hello from the pod', 'the port mapping is gone');
  });
});

/** Bytes per second one second of TCP from `from` to `ip` gets (iperf3, a server in `serverNs`). */
async function throughput(serverNs: string, from: string, ip: string): Promise<number> {
  const server = await startInNetns(serverNs, ['iperf3', '-s', '-1', '--forceflush'], /listening/);
  try {
    const r = JSON.parse(inNetns(from, ['iperf3', '-c', ip, '-t', '1', '-J']).stdout) as { end: { sum_received: { bits_per_second: number } } };
    return r.end.sum_received.bits_per_second / 8;
  } finally {
    await server.stop();
  }
}

// vxlan's programs hold the host veth's ingress hook (clsact) and deliver to pods with
// bpf_redirect_peer, past the host veth: bandwidth cannot shape a vxlan pod (README: chaining).
test('vxlan: bandwidth refuses egress shaping (clsact holds the hook); ingress shaping is bypassed by bpf_redirect_peer', { skip: skip ?? modeKernelSkipReason('vxlan') ?? (has('iperf3') ? undefined : 'needs iperf3 (scripts/setup.sh installs it)'), timeout: 90_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('cb'));
  const m = modeNode(scope, 'vxlan');
  const { before } = warmChainOn(scope, m, [TUNING]);

  await t.test('with an egress rate, bandwidth ADD fails ("create ingress qdisc: file exists"); the runtime\'s DEL leaves nothing', () => {
    const bw = chainOn(scope, m, [BANDWIDTH], 'e');
    const att = bw.attachment('e', scope.pod('e').path);
    const failed = bw.chain.addFailure(att);
    assert.equal(failed?.run.type, 'bandwidth', 'the chain ADD fails at bandwidth, after testcni\'s ADD');
    assert.match(String(failed!.run.json?.msg), /create ingress qdisc: file exists/);
    must('DEL after the failed ADD', () => bw.chain.del(att));
    const after = snapshot(m);
    assert.deepEqual([after.node, after.qdiscs, after.ipam], [before.node, before.qdiscs, before.ipam], 'node, qdiscs and IPAM as before');
  });

  await t.test('with an ingress rate only, the tbf goes in and shapes the node\'s traffic to the pod, not another pod\'s', async () => {
    const rate = 8_000_000; // bits/s
    const bw = chainOn(scope, m, [{ type: 'bandwidth', ingressRate: rate, ingressBurst: rate / 100 }], 'i');
    const [a, b] = [scope.pod('a'), scope.pod('b')];
    const [attA, attB] = [bw.attachment('a', a.path), bw.attachment('b', b.path)];
    must('ADD a', () => bw.chain.add(attA));
    const ipB = String((must('ADD b', () => bw.chain.add(attB)).ips as { address: string }[])[0]!.address).split('/')[0]!;
    const tbf = (JSON.parse(inNetns(m.node.name, ['tc', '-j', 'qdisc', 'show', 'dev', m.hostIf(attB.containerId)!]).stdout) as Json[]).find((q) => q.kind === 'tbf');
    assert.ok(tbf, 'tbf on pod b\'s host veth');
    const fromNode = await throughput(b.name, m.node.name, ipB);
    const fromPod = await throughput(b.name, a.name, ipB);
    t.diagnostic(`to pod b at ${rate / 1e6} Mbit/s: from the node ${(fromNode * 8 / 1e6).toFixed(1)} Mbit/s, from pod a ${(fromPod * 8 / 1e6).toFixed(1)} Mbit/s`);
    assert.ok(fromNode * 8 < rate * 1.5, 'the node\'s traffic goes through the host veth and its tbf');
    assert.ok(fromPod * 8 > rate * 10, 'pod a\'s traffic is redirected into pod b past the host veth: not shaped');
    must('DEL a', () => bw.chain.del(attA));
    must('DEL b', () => bw.chain.del(attB));
  });
});

// A child link of the node's device (macvlan, ipvlan) has no node side: what a chain can add on
// top of it, and what it cannot by design (README: chaining).
for (const mode of ['macvlan', 'ipvlan']) {
  const skipChild = skip ?? modeKernelSkipReason(mode) ?? undefined;

  test(`${mode}: testcni + portmap + tuning through ADD, CHECK, DEL; a hostPort cannot reach the pod; bandwidth refuses (no veth)`, { skip: skipChild, timeout: 90_000 }, async (t) => {
    const scope = new Scope(t, uniquePrefix('cv'));
    const m = modeNode(scope, mode);
    const { chain, attachment, before } = warmChainOn(scope, m, [PORTMAP, TUNING]);
    const pod = scope.pod('0');
    const att = attachment('pod', pod.path);
    let podIp = '';

    await t.test('ADD: portmap and tuning build on testcni\'s result, which has no node-side interface', () => {
      const result = must('ADD', () => chain.add(att));
      assert.deepEqual(chain.runs.slice(-3).map((r) => `${r.type} ${r.command}`), ['testcni ADD', 'portmap ADD', 'tuning ADD']);
      const ifs = result.interfaces as { name: string; sandbox?: string }[];
      assert.deepEqual(ifs.map((i) => [i.name, i.sandbox]), [['eth0', pod.path]], 'one interface: the child in the pod');
      podIp = (result.ips as { address: string }[])[0]!.address.split('/')[0]!;
      assert.match(podIp, m.podAddress);
    });

    await t.test('tuning: the sysctl is set in the pod', () => {
      assert.equal(inNetns(pod.name, ['sysctl', '-n', 'net.core.somaxconn']).stdout.trim(), SOMAXCONN);
    });

    await t.test('portmap: its DNAT rule is in, another host reaches the pod directly, but not through the node\'s hostPort', async () => {
      assert.ok(podIp, 'ADD gave an address');
      await podServer(scope, pod.path, 'hello from the pod');
      assert.equal(fetchFrom(m.wire, podIp, CONTAINER_PORT), 'hello from the pod', 'the pod is on the node network: reached at its own address');
      const nat = inNetns(m.node.name, ['iptables-save', '-t', 'nat']).stdout;
      assert.match(nat, new RegExp(`--to-destination ${podIp.replace(/\./g, '\\.')}:${CONTAINER_PORT}`), 'portmap wrote a DNAT rule to the pod');
      // The node translates the packet, then sends it out of the master to the pod's address: a
      // child never hears its master, so the connection goes nowhere (README: chaining).
      assert.equal(fetchFrom(m.wire, m.nodeIp, HOST_PORT), '', `${m.nodeIp}:${HOST_PORT} does not reach a ${mode} pod (by design)`);
    });

    await t.test('CHECK: testcni and tuning agree with the cached result (portmap 1.1.1 cannot: upstream bug)', () => {
      checkChain(t, chain, att, ['testcni', 'portmap', 'tuning']);
    });

    await t.test('DEL (reverse order), then a second DEL without netns, leave nothing behind', () => {
      must('DEL', () => chain.del(att));
      assert.deepEqual(chain.runs.slice(-3).map((r) => `${r.type} ${r.command}`), ['tuning DEL', 'portmap DEL', 'testcni DEL']);
      must('second DEL', () => chain.del({ ...att, netns: '' }));
      const after = snapshot(m);
      assert.deepEqual(after.node, before.node, 'node links, addresses, routes and iptables (portmap\'s rules) as before');
      assert.deepEqual(after.qdiscs, before.qdiscs, 'tc qdiscs as before');
      assert.deepEqual(after.state, before.state, 'no journal');
      assert.deepEqual(after.ipam, before.ipam, 'no reservation');
      assert.equal(m.reservation(podIp), undefined, 'the address is free');
      assert.equal(chain.cachedResult(att), null, 'the cached result is gone');
      assert.deepEqual(linkNames(pod.name), ['lo'], 'the child is gone from the pod');
    });

    await t.test('bandwidth refuses a pod without a veth; the runtime\'s DEL after the failed ADD leaves nothing', () => {
      const bw = chainOn(scope, m, [BANDWIDTH], 'bw');
      const bwPod = scope.pod('b');
      const bwAtt = bw.attachment('bw', bwPod.path);
      const failed = bw.chain.addFailure(bwAtt);
      assert.ok(failed, 'the chain ADD fails');
      assert.equal(failed.run.type, 'bandwidth', 'at bandwidth, after testcni\'s ADD succeeded');
      assert.match(String(failed.run.json?.msg), /has no veth peer/, `bandwidth names why: ${failed.run.stdout}`);
      // a runtime (libcni's caller) tears down a failed ADD with DEL of the whole list
      must('DEL after the failed ADD', () => bw.chain.del(bwAtt));
      const after = snapshot(m);
      assert.deepEqual(after.node, before.node, 'node as before');
      assert.deepEqual(after.qdiscs, before.qdiscs, 'no qdisc');
      assert.deepEqual(after.ipam, before.ipam, 'no reservation');
      assert.deepEqual(linkNames(bwPod.name), ['lo'], 'nothing in the pod');
    });
  });
}
