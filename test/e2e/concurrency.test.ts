// Many plugin processes at once on one node: distinct addresses, GC of stale attachments,
// and a pool that runs out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { rootSkipReason, uniquePrefix, runPluginAsync, treeSnapshot, inNetns, type TestNode } from '../helpers/netns.ts';
import {
  Scope, cni, show, linkNames, reservations, journalFile, journalDirOf, settledNodeState, ping, podLink, BRIDGE,
} from '../helpers/e2e.ts';

const skip = rootSkipReason(['ping']) ?? undefined;
const PODS = 32;
const KEEP = 20;

interface Attached {
  cid: string;
  pod: { name: string; path: string };
  ip: string;
  hostVeth: string;
}

test(`${PODS} concurrent ADDs, then GC of the ${PODS - KEEP} not listed as valid, then DEL of the rest`, { skip, timeout: 120_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('cc'));
  // A fresh node: the first ADDs also race to create the shared bridge.
  const node = scope.node();
  const pods = Array.from({ length: PODS }, (_, i) => ({ cid: `${scope.prefix}-c${i}`, pod: scope.pod(String(i)) }));
  const config = node.config();

  const results = await Promise.all(pods.map((p) => runPluginAsync({ command: 'ADD', containerId: p.cid, netns: p.pod.path, config, nodeNs: node.name })));
  const attached: Attached[] = results.map((r, i) => {
    assert.equal(r.code, 0, `ADD ${i}: ${show(r)}`);
    const res = r.json as { ips: { address: string }[]; interfaces: { name: string }[] };
    return { ...pods[i]!, ip: res.ips[0]!.address.split('/')[0]!, hostVeth: res.interfaces[1]!.name };
  });
  assert.equal(new Set(attached.map((a) => a.ip)).size, PODS, 'every pod got its own address');
  assert.deepEqual(reservations(node), Object.fromEntries(attached.map((a) => [a.ip, `${a.cid}/eth0`])), 'one IPAM file per pod, owned by it');
  for (const a of attached) assert.equal(podLink(a.pod.name)?.addr_info.find((x) => x.family === 'inet')?.local, a.ip, `${a.cid} has its address`);
  const veths = linkNames(node.name).filter((n) => n !== 'lo' && n !== BRIDGE);
  assert.deepEqual(veths.sort(), attached.map((a) => a.hostVeth).sort(), 'one host veth per pod');

  // GC with 20 valid attachments: exactly the other 12 go.
  const kept = attached.slice(0, KEEP);
  const stale = attached.slice(KEEP);
  const keptJournals = kept.map((a) => readFileSync(journalFile(node, a.cid), 'utf8'));
  const gc = cni(node, {
    command: 'GC',
    config: { ...config, 'cni.dev/valid-attachments': kept.map((a) => ({ containerID: a.cid, ifname: 'eth0' })) },
  });
  assert.equal(gc.code, 0, `GC: ${show(gc)}`);
  assert.equal(gc.stdout, '', 'GC prints nothing on success');
  assert.deepEqual(reservations(node), Object.fromEntries(kept.map((a) => [a.ip, `${a.cid}/eth0`])), 'only the valid attachments keep addresses');
  assert.deepEqual(readdirJournals(node).sort(), kept.map((a) => `${a.cid}@eth0.jsonl`).sort(), 'only the valid attachments keep journals');
  assert.deepEqual(kept.map((a) => readFileSync(journalFile(node, a.cid), 'utf8')), keptJournals, 'kept journals untouched');
  const after = linkNames(node.name);
  for (const a of stale) assert.ok(!after.includes(a.hostVeth), `${a.cid}: host veth ${a.hostVeth} removed`);
  for (const a of kept) assert.ok(after.includes(a.hostVeth), `${a.cid}: host veth ${a.hostVeth} kept`);
  for (const a of stale) assert.equal(podLink(a.pod.name), null, `${a.cid}: eth0 gone from the pod`);
  assert.ok(ping(kept[0]!.pod.name, kept[1]!.ip), 'kept pods still reach each other');
  assert.ok(ping(kept[1]!.pod.name, kept[0]!.ip), 'kept pods still reach each other (reverse)');

  const dels = await Promise.all(kept.map((a) => runPluginAsync({ command: 'DEL', containerId: a.cid, netns: a.pod.path, config, nodeNs: node.name })));
  dels.forEach((r, i) => assert.equal(r.code, 0, `DEL ${kept[i]!.cid}: ${show(r)}`));
  assert.deepEqual(linkNames(node.name).sort(), [BRIDGE, 'lo'].sort(), 'no host veth left');
  assert.deepEqual(reservations(node), {}, 'no reservation left');
  assert.deepEqual(readdirJournals(node), [], 'no journal left');
  assert.deepEqual(Object.keys(treeSnapshot(node.stateDir)).filter((f) => !f.endsWith('/')), [], 'no file at all left in the state dir (locks included)');
  const addrs = JSON.parse(inNetns(node.name, ['ip', '-j', '-4', 'addr', 'show']).stdout) as { ifname: string; addr_info: { local: string }[] }[];
  assert.deepEqual(addrs.map((l) => [l.ifname, l.addr_info.map((x) => x.local)]), [['lo', ['127.0.0.1']], [BRIDGE, ['10.244.0.1']]], 'only the gateway stays');
});

test('pool exhaustion: a third ADD into a 2-address range fails fast with code 100 and leaves nothing', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('cx'));
  const node = scope.node();
  const config = node.config({ ipam: { rangeStart: '10.244.0.10', rangeEnd: '10.244.0.11' } });
  const ips: string[] = [];
  for (const i of [0, 1]) {
    const r = cni(node, { command: 'ADD', containerId: `${scope.prefix}-c${i}`, netns: scope.pod(String(i)).path, config });
    assert.equal(r.code, 0, show(r));
    ips.push((r.json as { ips: { address: string }[] }).ips[0]!.address);
  }
  assert.deepEqual(ips.sort(), ['10.244.0.10/32', '10.244.0.11/32']);

  const third = scope.pod('2');
  const before = { node: settledNodeState(node.name), journal: treeSnapshot(node.stateDir), ipam: treeSnapshot(node.ipamDir) };
  const started = Date.now();
  const r = cni(node, { command: 'ADD', containerId: `${scope.prefix}-c2`, netns: third.path, config });
  const ms = Date.now() - started;
  assert.equal(r.code, 1, show(r));
  assert.equal((r.json as { code: number }).code, 100, show(r));
  // One bounded pass over the range: nowhere near the 20 s attachment-lock timeout.
  assert.ok(ms < 5000, `exhaustion reported after ${ms} ms`);
  assert.deepEqual(settledNodeState(node.name), before.node, 'node unchanged');
  assert.deepEqual(treeSnapshot(node.stateDir), before.journal, 'no journal or lock file left');
  assert.deepEqual(treeSnapshot(node.ipamDir), before.ipam, 'IPAM files unchanged (cursor included)');
  assert.equal(podLink(third.name), null, 'the pod got no eth0');

  // The runtime follows a failed ADD with DEL: that must succeed and touch nobody else.
  const del = cni(node, { command: 'DEL', containerId: `${scope.prefix}-c2`, netns: third.path, config });
  assert.equal(del.code, 0, show(del));
  assert.equal(Object.keys(reservations(node)).length, 2, 'the two pods keep their addresses');
});

/** Every file in the network's journal directory. */
function readdirJournals(node: TestNode): string[] {
  const dir = journalDirOf(node);
  return existsSync(dir) ? readdirSync(dir) : [];
}
