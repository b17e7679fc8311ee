// testcni as the first plugin of a chain with the reference portmap, bandwidth and tuning plugins
// (Debian's containernetworking-plugins: spec <= 1.0.0), run through ADD, CHECK and DEL the way
// libcni runs a conflist (test/helpers/conflist.ts): each plugin does its part on top of
// testcni's result, CHECK passes, and DEL leaves the node as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { rootSkipReason, uniquePrefix, inNetns, treeSnapshot, type TestNode } from '../helpers/netns.ts';
import { Scope, settledNodeState, reservations, readJournal, linkNames, BRIDGE } from '../helpers/e2e.ts';
import { ConflistRunner, ChainError, makeBinDir, toConflist, REFERENCE_CNI_DIR, type Attachment } from '../helpers/conflist.ts';
import { hostVethName } from '../../planner/names.ts';

const CHAINED = ['portmap', 'bandwidth', 'tuning'];
const missing = CHAINED.find((p) => !existsSync(join(REFERENCE_CNI_DIR, p)));
const skip = rootSkipReason(['iptables', 'iptables-save', 'tc', 'ping'])
  ?? (missing ? `needs ${join(REFERENCE_CNI_DIR, missing)} (containernetworking-plugins)` : undefined)
  ?? undefined;

const NODE_IP = '198.18.0.1';
const CLIENT_IP = '198.18.0.2';
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

function snapshot(node: TestNode) {
  // the client's ARP entry, from the test's own connections, is not the plugins' state
  inNetns(node.name, ['ip', 'neigh', 'flush', 'dev', 'up0']);
  const tree = (dir: string) => Object.fromEntries(Object.entries(treeSnapshot(dir)).filter(([k]) => !k.endsWith('/last_reserved_ip.0')));
  return { node: settledNodeState(node.name), qdiscs: qdiscs(node.name), state: tree(node.stateDir), ipam: tree(node.ipamDir) };
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

test('testcni + portmap + bandwidth + tuning: ADD, CHECK, DEL like libcni (cniVersion 1.0.0)', { skip, timeout: 90_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('ch'));
  const node = scope.node();
  // another host on the node's network: the client of the port mapping
  const client = scope.pod('c');
  inNetns(node.name, ['ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client.path]);
  inNetns(node.name, ['ip', 'addr', 'add', `${NODE_IP}/24`, 'dev', 'up0']);
  inNetns(node.name, ['ip', 'link', 'set', 'up0', 'up']);
  inNetns(client.name, ['ip', 'addr', 'add', `${CLIENT_IP}/24`, 'dev', 'eth0']);
  inNetns(client.name, ['ip', 'link', 'set', 'eth0', 'up']);

  const conflist = toConflist(node.config({ cniVersion: '1.0.0' }), [
    { type: 'portmap', capabilities: { portMappings: true } },
    { type: 'bandwidth', ingressRate: INGRESS.rate, ingressBurst: INGRESS.burst, egressRate: EGRESS.rate, egressBurst: EGRESS.burst },
    { type: 'tuning', sysctl: { 'net.core.somaxconn': SOMAXCONN } },
  ]);
  const binDir = makeBinDir(join(node.dir, 'bin'));
  mkdirSync(join(node.dir, 'cache'));
  const chain = new ConflistRunner(conflist, { nodeNs: node.name, pluginDirs: [binDir, REFERENCE_CNI_DIR], cacheDir: join(node.dir, 'cache') });
  const portMappings = [{ hostPort: HOST_PORT, containerPort: CONTAINER_PORT, protocol: 'tcp' }];
  const attachment = (tag: string, netns: string): Attachment => ({
    containerId: `${scope.prefix}-${tag}`,
    netns,
    args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'e2e', K8S_POD_NAME: tag },
    capabilityArgs: { portMappings },
  });
  const run = <T>(what: string, fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      if (e instanceof ChainError) assert.fail(`${what}: ${e.message}`);
      throw e;
    }
  };

  // The chain once through: makes what the plugins keep on the node for later pods (testcni's
  // bridge, portmap's top-level chains, forwarding and route_localnet), so DEL must return to this.
  const warmPod = scope.pod('w');
  run('warm-up ADD', () => chain.add(attachment('warm', warmPod.path)));
  run('warm-up DEL', () => chain.del(attachment('warm', warmPod.path)));
  const before = snapshot(node);

  const pod = scope.pod('0');
  const att = attachment('pod', pod.path);
  const hostVeth = hostVethName(att.containerId, 'eth0');
  let podIp = '';

  await t.test('ADD: every plugin builds on testcni\'s result', () => {
    const result = run('ADD', () => chain.add(att));
    assert.deepEqual(chain.runs.slice(-4).map((r) => `${r.type} ${r.command}`), ['testcni ADD', 'portmap ADD', 'bandwidth ADD', 'tuning ADD']);
    // what the chained plugins read from prevResult
    const ifs = result.interfaces as { name: string; sandbox?: string }[];
    const ips = result.ips as { address: string; interface: number }[];
    assert.ok(ifs.some((i) => i.name === hostVeth && i.sandbox === undefined), 'the host veth is in the result (bandwidth shapes it)');
    const podIf = ips[0]!.interface;
    assert.deepEqual(ifs[podIf], { ...ifs[podIf], name: 'eth0', sandbox: pod.path }, 'the address is indexed to eth0 in the pod netns');
    podIp = ips[0]!.address.split('/')[0]!;
    assert.equal(chain.cachedResult(att)?.cniVersion, '1.0.0');
  });

  await t.test('portmap: the node\'s hostPort reaches a server in the pod from another host', async () => {
    assert.ok(podIp, 'ADD gave an address');
    await podServer(scope, pod.path, 'hello from the pod');
    assert.equal(fetchFrom(pod.name, '127.0.0.1', CONTAINER_PORT), 'hello from the pod', 'the server answers inside the pod');
    assert.equal(fetchFrom(client.name, NODE_IP, HOST_PORT), 'hello from the pod', `${NODE_IP}:${HOST_PORT} from the client reaches ${podIp}:${CONTAINER_PORT}`);
    assert.equal(fetchFrom(pod.name, NODE_IP, HOST_PORT), 'hello from the pod', 'the pod reaches itself through the node\'s hostPort (hairpin)');
    const nat = inNetns(node.name, ['iptables-save', '-t', 'nat']).stdout;
    assert.match(nat, new RegExp(`--to-destination ${podIp.replace(/\./g, '\\.')}:${CONTAINER_PORT}`), 'a DNAT rule to the pod');
  });

  await t.test('bandwidth: the host veth and the ifb device carry tbf at the configured rates', () => {
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
    const runs = chain.checkEach(att);
    assert.deepEqual(runs.map((r) => `${r.type} ${r.command}`), ['testcni CHECK', 'portmap CHECK', 'bandwidth CHECK', 'tuning CHECK']);
    for (const r of runs.filter((x) => x.type !== 'portmap')) assert.equal(r.code, 0, `${r.type} CHECK: ${r.stdout} ${r.stderr.slice(0, 500)}`);
    // portmap up to 1.1.x checks an IPv6 DNAT chain for an IPv4-only pod wherever ip6tables works,
    // so its CHECK fails after any ADD (containernetworking/plugins#819, fixed upstream later).
    // Accepted here only as exactly that failure; a fixed portmap must pass.
    const portmap = runs.find((r) => r.type === 'portmap')!;
    if (portmap.code !== 0) {
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
    assert.equal(stoppedAt, portmap.code === 0 ? null : 'portmap', 'a libcni-style CHECK fails only where portmap does');
  });

  await t.test('DEL (reverse order), then a second DEL without netns, leave nothing behind', () => {
    run('DEL', () => chain.del(att));
    assert.deepEqual(chain.runs.slice(-4).map((r) => `${r.type} ${r.command}`), ['tuning DEL', 'bandwidth DEL', 'portmap DEL', 'testcni DEL']);
    run('second DEL', () => chain.del({ ...att, netns: '' }));
    const after = snapshot(node);
    assert.deepEqual(after.node, before.node, 'node links (veth, ifb), addresses, routes, neighbours and iptables (portmap) as before');
    assert.deepEqual(after.qdiscs, before.qdiscs, 'tc qdiscs as before');
    assert.deepEqual(after.state, before.state, 'no journal');
    assert.deepEqual(after.ipam, before.ipam, 'no reservation');
    assert.equal(readJournal(node, att.containerId), null);
    assert.deepEqual(reservations(node), {});
    assert.ok(!linkNames(node.name).includes(hostVeth));
    assert.ok(linkNames(node.name).includes(BRIDGE), 'the bridge (node scope) stays');
    assert.equal(chain.cachedResult(att), null, 'the cached result is gone');
    assert.notEqual(fetchFrom(client.name, NODE_IP, HOST_PORT), 'hello from the pod', 'the port mapping is gone');
  });
});
