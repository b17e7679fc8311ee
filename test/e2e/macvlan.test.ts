// macvlan through the built plugin on a simulated node whose eth0 is wired to a gateway: the
// pod is a macvlan child of eth0 on the node network, reachable at once; DEL (also with its
// netns gone) leaves the node as it was, its master not promiscuous; what the node cannot carry
// is refused before anything changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rootSkipReason, uniquePrefix, treeSnapshot, inNetns, delNetns, runPluginAsync, type TestNode } from '../helpers/netns.ts';
import { Scope, cni, show, settledNodeState, linkNames, podDefaultRoutes, networkOf, reservations } from '../helpers/e2e.ts';
import { uplinkNode, uplinkLink, WIRE } from '../helpers/uplink.ts';

const skip = rootSkipReason(['ping']) ?? undefined;
const CURSOR = 'last_reserved_ip.0';

interface Snapshot {
  node: Record<string, unknown>;
  state: Record<string, string>;
  ipam: Record<string, string>;
}

function snapshot(node: TestNode): Snapshot {
  const ipam = treeSnapshot(node.ipamDir);
  delete ipam[`/${networkOf(node)}/${CURSOR}`];
  return { node: settledNodeState(node.name), state: treeSnapshot(node.stateDir), ipam };
}

function assertUnchanged(node: TestNode, before: Snapshot, what: string): void {
  const after = snapshot(node);
  assert.deepEqual(after.node, before.node, `${what}: node links (eth0's promiscuity too), addresses, routes as before`);
  assert.deepEqual(after.state, before.state, `${what}: state dir as before`);
  assert.deepEqual(after.ipam, before.ipam, `${what}: IPAM dir as before (cursor aside)`);
}

/** ADD+DEL of a throwaway pod: the state dir's lock and journal dirs exist from then on. */
function warmUp(scope: Scope, node: TestNode, config: Record<string, unknown>): void {
  const pod = scope.pod('w');
  for (const command of ['ADD', 'DEL']) {
    const r = cni(node, { command, containerId: `${scope.prefix}-warm`, netns: pod.path, config });
    assert.equal(r.code, 0, `warm-up ${command}: ${show(r)}`);
  }
}

function pingOnce(ns: string, ip: string): boolean {
  return inNetns(ns, ['ping', '-n', '-q', '-c', '1', '-W', '2', ip], { allowFail: true }).code === 0;
}

type LinkJson = { ifname: string; address: string; mtu: number; linkinfo?: { info_kind: string; info_data?: { mode?: string } } };

function podLinks(pod: string): LinkJson[] {
  return JSON.parse(inNetns(pod, ['ip', '-d', '-j', 'link', 'show']).stdout) as LinkJson[];
}

test('ADD, CHECK, DEL, DEL: a macvlan child on the node network, reachable at once; the node as before', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('mv'));
  const { node, wire, config } = uplinkNode(scope);
  const cfg = config({ macvlan: { mode: 'bridge' } });
  warmUp(scope, node, cfg);
  const before = snapshot(node);
  const nodeLinks = linkNames(node.name);
  const [p1, p2] = [scope.pod('1'), scope.pod('2')];
  const cid = (n: string) => `${scope.prefix}-${n}`;

  const add = cni(node, { command: 'ADD', containerId: cid('1'), netns: p1.path, config: cfg });
  assert.equal(add.code, 0, show(add));
  // Right after ADD, from another host on the node network: one echo, no retry.
  const ip = (r: { json: Record<string, unknown> | null }) => (r.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
  assert.ok(pingOnce(wire, ip(add)), 'the gateway reaches the pod with its first ping');
  const result = add.json as { ips: { address: string; gateway: string; interface: number }[]; interfaces: { name: string; mac: string; sandbox: string }[]; routes: unknown[] };
  assert.deepEqual(result.ips, [{ address: `${ip(add)}/24`, gateway: WIRE.gateway, interface: 0 }]);
  assert.match(ip(add), /^198\.18\.0\.1[01]\d$/, 'from the range');
  assert.deepEqual(result.routes, [{ dst: '0.0.0.0/0', gw: WIRE.gateway }]);
  assert.equal(result.interfaces.length, 1);
  assert.equal(result.interfaces[0]!.sandbox, p1.path);

  const links = podLinks(p1.name);
  assert.deepEqual(links.map((l) => l.ifname).sort(), ['eth0', 'lo'], 'renamed: no temporary name left');
  const eth0 = links.find((l) => l.ifname === 'eth0')!;
  assert.equal(eth0.linkinfo?.info_kind, 'macvlan');
  assert.equal(eth0.linkinfo?.info_data?.mode, 'bridge');
  assert.equal(eth0.address, result.interfaces[0]!.mac, 'the MAC the result reports');
  assert.equal(eth0.mtu, 1500, 'the master\'s MTU');
  assert.deepEqual(podDefaultRoutes(p1.name).map((r) => [r.gateway, r.dev]), [[WIRE.gateway, 'eth0']]);
  assert.deepEqual(linkNames(node.name), nodeLinks, 'nothing new in the node: the child was born in the pod');

  assert.ok(pingOnce(p1.name, WIRE.gateway), 'pod -> gateway');
  // A macvlan child and its master do not hear each other: pod -> its own node fails (README: limits).
  assert.equal(pingOnce(p1.name, WIRE.node), false, 'pod -> its own node is not expected to work');

  const add2 = cni(node, { command: 'ADD', containerId: cid('2'), netns: p2.path, config: cfg });
  assert.equal(add2.code, 0, show(add2));
  assert.ok(pingOnce(p2.name, ip(add)), 'pod -> pod on the same master (bridge mode)');

  const check = cni(node, { command: 'CHECK', containerId: cid('1'), netns: p1.path, config: { ...cfg, prevResult: add.json } });
  assert.equal(check.code, 0, show(check));
  inNetns(p1.name, ['ip', 'link', 'set', 'eth0', 'down']);
  const drift = cni(node, { command: 'CHECK', containerId: cid('1'), netns: p1.path, config: { ...cfg, prevResult: add.json } });
  assert.equal(drift.code, 1);
  assert.equal(drift.json?.code, 105, show(drift));
  assert.match(String(drift.json?.details), /link\.up:pod:eth0/);

  for (const [c, p] of [[cid('2'), p2], [cid('1'), p1], [cid('1'), p1]] as const) {
    const del = cni(node, { command: 'DEL', containerId: c, netns: p.path, config: cfg });
    assert.equal(del.code, 0, show(del));
  }
  assert.deepEqual(podLinks(p1.name).map((l) => l.ifname), ['lo']);
  assertUnchanged(node, before, 'after DEL');
  assert.equal(uplinkLink(node).promiscuity, 0, 'the master is not left promiscuous');
});

test('DEL of a pod whose netns is gone succeeds and releases its address', { skip, timeout: 30_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('mg'));
  const { node, config } = uplinkNode(scope);
  const cfg = config();
  const pod = scope.pod('g');
  const cid = `${scope.prefix}-g`;
  const add = cni(node, { command: 'ADD', containerId: cid, netns: pod.path, config: cfg });
  assert.equal(add.code, 0, show(add));
  assert.deepEqual(Object.values(reservations(node)), [`${cid}/eth0`]);
  delNetns(pod.name); // its child goes with it
  const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config: cfg });
  assert.equal(del.code, 0, show(del));
  assert.deepEqual(reservations(node), {}, 'the address is released');
});

test('private keeps pods on one master apart; passthru makes the master promiscuous only while its pod exists', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('mp'));
  const { node, wire, config } = uplinkNode(scope);
  const priv = config({ macvlan: { mode: 'private' } });
  const [a, b] = [scope.pod('a'), scope.pod('b')];
  const ips: string[] = [];
  for (const [n, p] of [['a', a], ['b', b]] as const) {
    const r = cni(node, { command: 'ADD', containerId: `${scope.prefix}-${n}`, netns: p.path, config: priv });
    assert.equal(r.code, 0, show(r));
    ips.push((r.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!);
  }
  assert.ok(pingOnce(a.name, WIRE.gateway), 'private pod -> gateway');
  assert.ok(pingOnce(b.name, WIRE.gateway), 'private pod -> gateway');
  assert.equal(pingOnce(a.name, ips[1]!), false, 'private pod -> the other private pod on the master');
  for (const [n, p] of [['a', a], ['b', b]] as const) {
    const r = cni(node, { command: 'DEL', containerId: `${scope.prefix}-${n}`, netns: p.path, config: priv });
    assert.equal(r.code, 0, show(r));
  }

  const pass = config({ macvlan: { mode: 'passthru' } });
  const before = uplinkLink(node).promiscuity;
  const c = scope.pod('c');
  const add = cni(node, { command: 'ADD', containerId: `${scope.prefix}-c`, netns: c.path, config: pass });
  assert.equal(add.code, 0, show(add));
  assert.ok(uplinkLink(node).promiscuity > before, 'passthru: the master is promiscuous for its one child');
  assert.ok(pingOnce(wire, (add.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!), 'the passthru pod is reachable');
  const second = cni(node, { command: 'ADD', containerId: `${scope.prefix}-d`, netns: scope.pod('d').path, config: pass });
  assert.equal(second.code, 1, 'a passthru master takes one child');
  assert.equal(second.json?.code, 101, show(second));
  const del = cni(node, { command: 'DEL', containerId: `${scope.prefix}-c`, netns: c.path, config: pass });
  assert.equal(del.code, 0, show(del));
  assert.equal(uplinkLink(node).promiscuity, before, 'and not after its DEL');
});

test('bad master, unknown mode, range outside the subnet, MTU above the master\'s, bad MAC: clear errors, nothing changed', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('mb'));
  const { node, config } = uplinkNode(scope);
  warmUp(scope, node, config());
  const pod = scope.pod('x');
  const cases: [string, Record<string, unknown>, number, string, Record<string, string>?][] = [
    ['bad master', config({ macvlan: { master: 'nosuch0' } }), 7, 'macvlan.master'],
    ['unknown mode', config({ macvlan: { mode: 'bridged' } }), 7, 'macvlan.mode'],
    ['range outside the subnet', config({ ipam: { rangeStart: '198.18.1.10', rangeEnd: '198.18.1.20' } }), 7, 'ipam.rangeStart'],
    ['MTU above the master\'s', config({ mtu: 9000 }), 7, 'mtu'],
    ['bad MAC from the runtime', config({ runtimeConfig: { mac: 'ff:ff:ff:ff:ff:ff' } }), 7, 'runtimeConfig.mac'],
    ['bad MAC in CNI_ARGS', config(), 4, 'CNI_ARGS MAC', { CNI_ARGS: 'MAC=zz' }],
  ];
  const before = snapshot(node);
  for (const [what, cfg, code, field, env] of cases) {
    const r = cni(node, { command: 'ADD', containerId: `${scope.prefix}-x`, netns: pod.path, config: cfg, ...(env ? { env } : {}) });
    assert.equal(r.code, 1, `${what}: ${show(r)}`);
    assert.equal(r.json?.code, code, `${what}: ${show(r)}`);
    assert.ok(String(r.json?.msg).includes(field) || String(r.json?.details).includes(field), `${what}: names ${field}: ${show(r)}`);
    assert.deepEqual(podLinks(pod.name).map((l) => l.ifname), ['lo'], `${what}: nothing in the pod`);
    assertUnchanged(node, before, what);
  }
});

test('8 concurrent ADDs on one master, then GC keeps exactly the valid 4, then DEL: nothing left', { skip, timeout: 90_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('mc'));
  const { node, wire, config } = uplinkNode(scope);
  const cfg = config();
  warmUp(scope, node, cfg);
  const before = snapshot(node);
  const pods = Array.from({ length: 8 }, (_, i) => ({ cid: `${scope.prefix}-c${i}`, pod: scope.pod(`c${i}`) }));
  const adds = await Promise.all(pods.map((p) => runPluginAsync({ command: 'ADD', containerId: p.cid, netns: p.pod.path, config: cfg, nodeNs: node.name })));
  adds.forEach((r, i) => assert.equal(r.code, 0, `ADD ${pods[i]!.cid}: ${show(r)}`));
  const ips = adds.map((r) => (r.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!);
  assert.equal(new Set(ips).size, 8, `distinct addresses: ${ips.join(' ')}`);
  for (const ip of ips) assert.ok(pingOnce(wire, ip), `${ip} answers its first ping`);

  const kept = pods.slice(0, 4);
  const gc = cni(node, { command: 'GC', config: { ...cfg, 'cni.dev/valid-attachments': kept.map((p) => ({ containerID: p.cid, ifname: 'eth0' })) } });
  assert.equal(gc.code, 0, show(gc));
  assert.deepEqual(Object.values(reservations(node)).sort(), kept.map((p) => `${p.cid}/eth0`).sort(), 'only the valid attachments keep addresses');
  pods.forEach((p, i) => assert.deepEqual(podLinks(p.pod.name).map((l) => l.ifname).sort(), i < 4 ? ['eth0', 'lo'] : ['lo'], p.cid));
  assert.ok(pingOnce(kept[0]!.pod.name, ips[1]!), 'kept pods still reach each other');

  for (const p of kept) {
    const del = cni(node, { command: 'DEL', containerId: p.cid, netns: p.pod.path, config: cfg });
    assert.equal(del.code, 0, show(del));
  }
  assertUnchanged(node, before, 'after GC and DEL');
});
