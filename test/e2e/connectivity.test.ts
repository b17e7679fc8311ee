// Pods attached by the built plugin pass traffic; ADDs that must fail leave nothing behind;
// DEL succeeds whatever is left of the pod.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rootSkipReason, uniquePrefix, treeSnapshot, inNetns, delNetns, type TestNode } from '../helpers/netns.ts';
import {
  Scope, cni, show, ping, podLink, linkNames, reservations, readJournal, journalFile, settledNodeState, networkOf,
} from '../helpers/e2e.ts';

const skip = rootSkipReason(['ping']) ?? undefined;
const GATEWAY = '10.244.0.1';

function addPod(scope: Scope, node: TestNode, tag: string) {
  const pod = scope.pod(tag);
  const cid = `${scope.prefix}-${tag}`;
  const r = cni(node, { command: 'ADD', containerId: cid, netns: pod.path });
  assert.equal(r.code, 0, `ADD ${cid}: ${show(r)}`);
  const res = r.json as { ips: { address: string }[]; interfaces: { name: string }[] };
  return { pod, cid, ip: res.ips[0]!.address.split('/')[0]!, hostVeth: res.interfaces[1]!.name };
}

function ipamWithoutCursor(node: TestNode): Record<string, string> {
  const { [`/${networkOf(node)}/last_reserved_ip.0`]: _cursor, ...rest } = treeSnapshot(node.ipamDir);
  return rest;
}

test('two pods on one node reach each other and the gateway', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('ka'));
  const node = scope.node();
  const a = addPod(scope, node, 'a');
  const b = addPod(scope, node, 'b');
  assert.notEqual(a.ip, b.ip);
  assert.ok(ping(a.pod.name, b.ip), `a -> b (${b.ip})`);
  assert.ok(ping(b.pod.name, a.ip), `b -> a (${a.ip})`);
  assert.ok(ping(a.pod.name, GATEWAY), 'a -> gateway');
  assert.ok(ping(b.pod.name, GATEWAY), 'b -> gateway');
  // The oracle can fail: an address nobody holds does not answer.
  assert.ok(!ping(a.pod.name, '10.244.0.200', 1), 'an unused pod address does not answer');
});

test('ADD of an interface the container already has fails with 103 and leaves the pod alone', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('kb'));
  const node = scope.node();
  const a = addPod(scope, node, 'a');
  const before = {
    node: settledNodeState(node.name),
    pod: settledNodeState(a.pod.name),
    state: treeSnapshot(node.stateDir),
    ipam: treeSnapshot(node.ipamDir),
  };

  const again = cni(node, { command: 'ADD', containerId: a.cid, netns: a.pod.path });
  assert.equal(again.code, 1, show(again));
  assert.equal((again.json as { code: number }).code, 103, show(again));

  assert.deepEqual(settledNodeState(node.name), before.node, 'node unchanged');
  assert.deepEqual(settledNodeState(a.pod.name), before.pod, 'pod unchanged');
  assert.deepEqual(treeSnapshot(node.stateDir), before.state, 'journal unchanged');
  assert.deepEqual(treeSnapshot(node.ipamDir), before.ipam, 'IPAM unchanged, cursor included');
  assert.ok(ping(a.pod.name, GATEWAY), 'the pod still reaches its gateway');
});

test('ADD into a netns that already has eth0 fails and leaves nothing behind', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('kc'));
  const node = scope.node();
  addPod(scope, node, 'a'); // the bridge exists, so the node can be compared exactly
  const busy = scope.pod('b');
  inNetns(busy.name, ['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
  const theirs = podLink(busy.name);
  const cid = `${scope.prefix}-b`;
  const before = { node: settledNodeState(node.name), ipam: ipamWithoutCursor(node), reservations: reservations(node) };

  const r = cni(node, { command: 'ADD', containerId: cid, netns: busy.path });
  assert.equal(r.code, 1, show(r));
  const err = r.json as { code: number; msg: string; details?: string };
  assert.equal(err.code, 101, show(r));
  assert.match(`${err.msg} ${err.details}`, /link\.veth:pod:eth0/, 'the error names the veth step');

  assert.deepEqual(settledNodeState(node.name), before.node, 'no new host veth or any other node change');
  assert.deepEqual(reservations(node), before.reservations, 'no IPAM reservation for the failed ADD');
  assert.deepEqual(ipamWithoutCursor(node), before.ipam, 'IPAM dir unchanged (cursor aside)');
  const journal = readJournal(node, cid);
  assert.ok(journal === null || journal.state === 'rolled-back', `journal absent or rolled back, got ${journal?.state}`);
  assert.deepEqual(podLink(busy.name), theirs, "the netns's own eth0 is untouched");

  // The runtime's DEL after the failed ADD succeeds, removes the journal, and still leaves eth0 alone.
  const del = cni(node, { command: 'DEL', containerId: cid, netns: busy.path });
  assert.equal(del.code, 0, show(del));
  assert.equal(existsSync(journalFile(node, cid)), false, 'journal removed by DEL');
  assert.deepEqual(podLink(busy.name), theirs, "DEL leaves the netns's own eth0 alone");
});

test('DEL with an empty CNI_NETNS, and DEL after the netns is gone, succeed and release everything', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('kd'));
  const node = scope.node();
  const a = addPod(scope, node, 'a');
  const b = addPod(scope, node, 'b');

  const delA = cni(node, { command: 'DEL', containerId: a.cid, netns: '' });
  assert.equal(delA.code, 0, `DEL with CNI_NETNS="": ${show(delA)}`);
  assert.equal(delA.stdout, '');
  assert.ok(!linkNames(node.name).includes(a.hostVeth), `host veth ${a.hostVeth} removed`);
  assert.equal(podLink(a.pod.name), null, "a's eth0 went with its host veth");

  delNetns(b.pod.name);
  assert.equal(existsSync(b.pod.path), false);
  const delB = cni(node, { command: 'DEL', containerId: b.cid, netns: b.pod.path });
  assert.equal(delB.code, 0, `DEL after the netns is gone: ${show(delB)}`);
  assert.equal(delB.stdout, '');

  assert.deepEqual(reservations(node), {}, 'both addresses released');
  for (const p of [a, b]) assert.equal(readJournal(node, p.cid), null, `${p.cid}: journal removed`);
  // A deleted netns takes its veth pair along asynchronously; DEL must not leave it either way.
  const deadline = Date.now() + 2000;
  while (linkNames(node.name).includes(b.hostVeth) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(!linkNames(node.name).includes(b.hostVeth), `host veth ${b.hostVeth} removed`);
});

test('pods of one node reach each other through the gateway: each pod holds one neighbour entry, not one per peer', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('kn'));
  const node = scope.node();
  const pods = ['a', 'b', 'c', 'd', 'e'].map((tag) => addPod(scope, node, tag));
  for (const from of pods) {
    for (const to of pods) if (from !== to) assert.ok(ping(from.pod.name, to.ip, 1), `${from.cid} -> ${to.ip}`);
  }
  for (const p of pods) {
    const neigh = (JSON.parse(inNetns(p.pod.name, ['ip', '-j', '-4', 'neigh', 'show']).stdout || '[]') as { dst: string }[]).map((n) => n.dst);
    assert.deepEqual(neigh, [GATEWAY], `${p.cid} knows only its gateway (no redirect taught it a peer)`);
  }
});

test('an address reused by a new pod answers at once: the node does not keep the old pod\'s MAC for it', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('kr'));
  const node = scope.node();
  const config = node.config({ ipam: { rangeStart: '10.244.0.9', rangeEnd: '10.244.0.9' } }); // one address: the second pod gets the first one's
  const first = scope.pod('a');
  const a = cni(node, { command: 'ADD', containerId: `${scope.prefix}-a`, netns: first.path, config });
  assert.equal(a.code, 0, show(a));
  assert.equal(inNetns(node.name, ['ping', '-n', '-q', '-c', '1', '-W', '1', '10.244.0.9'], { allowFail: true }).code, 0, 'the node reaches the first pod');
  assert.equal(cni(node, { command: 'DEL', containerId: `${scope.prefix}-a`, netns: first.path, config }).code, 0);
  const second = scope.pod('b');
  const b = cni(node, { command: 'ADD', containerId: `${scope.prefix}-b`, netns: second.path, config });
  assert.equal(b.code, 0, show(b));
  assert.equal((b.json as { ips: { address: string }[] }).ips[0]!.address, '10.244.0.9/32', 'the same address');
  const p = inNetns(node.name, ['ping', '-n', '-q', '-c', '1', '-W', '1', '10.244.0.9'], { allowFail: true });
  assert.equal(p.code, 0, 'the node reaches the second pod at once');
});
