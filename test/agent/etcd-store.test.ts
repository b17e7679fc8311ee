// EtcdStore against a real etcd (started by the test on 127.0.0.1): registry with leases and a
// watch, block claims and address reservations under races, timeouts on a frozen etcd, and an
// etcd restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdStore, DatastoreUnavailable, BlocksExhausted, withTimeout, type NodeEvent } from '../../agent/datastore/etcd-store.ts';
import { parseCidr, containsCidr } from '../../lib/ipv4.ts';
import type { NodeRecord } from '../../model/node.ts';
import { TestEtcd, etcdAvailable, uniqueKeyPrefix } from '../helpers/etcd.ts';

const skip = etcdAvailable() ?? false;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const etcd = new TestEtcd('store');
before(async () => {
  if (!skip) await etcd.run();
});
after(() => etcd.destroy());

/** A store on the shared etcd, closed when the test ends. */
function open(t: { after: (fn: () => void) => void }, prefix: string, timeoutMs = 1000): EtcdStore {
  const s = new EtcdStore(etcd.settings(prefix, timeoutMs));
  t.after(() => s.close());
  return s;
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | null> | T | null): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

const rec = (name: string, i: number): NodeRecord => ({ name, underlayIp: `198.18.0.${10 + i}`, block: `10.244.${i}.0/24` });
const key = (c: string, ifName = 'eth0') => ({ containerId: c, ifName });

test('withTimeout: passes values through, turns slowness and failures into DatastoreUnavailable', async () => {
  assert.equal(await withTimeout(Promise.resolve(7), 100, 'x'), 7);
  const started = Date.now();
  await assert.rejects(withTimeout(new Promise(() => {}), 100, 'slow call'), (e: Error) => e instanceof DatastoreUnavailable && /slow call timed out after 100 ms/.test(e.message));
  assert.ok(Date.now() - started < 1000);
  await assert.rejects(withTimeout(Promise.reject(new Error('boom')), 100, 'bad call'), (e: Error) => e instanceof DatastoreUnavailable && /bad call: boom/.test(e.message));
});

test('register, listNodes and the watch: puts and deletes arrive with the records', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('reg');
  const watcherStore = open(t, prefix);
  const events: NodeEvent[] = [];
  const w = await watcherStore.watchNodes((e) => events.push(e), () => {});
  t.after(() => w.cancel());
  const a = open(t, prefix);
  const b = new EtcdStore(etcd.settings(prefix));
  t.after(() => b.close());
  const lost: Error[] = [];
  await a.register(rec('n1', 1), 10, (e) => lost.push(e));
  await b.register(rec('n2', 2), 1, (e) => lost.push(e));

  const listed = await watcherStore.listNodes();
  assert.deepEqual(listed.sort((x, y) => x.name.localeCompare(y.name)), [rec('n1', 1), rec('n2', 2)]);
  await until('two put events', 3000, () => events.length >= 2);
  assert.deepEqual(events.slice(0, 2).map(({ revision: _, ...e }) => e).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))), [
    { type: 'put', node: rec('n1', 1) },
    { type: 'put', node: rec('n2', 2) },
  ]);

  // Re-registering (a new underlay address) replaces the record: one put with the new value.
  const moved = { ...rec('n1', 1), underlayIp: '198.18.0.99' };
  await a.register(moved, 10, (e) => lost.push(e));
  await until('the re-registration put', 3000, () => events.some((e) => e.type === 'put' && e.node.underlayIp === '198.18.0.99'));
  assert.deepEqual((await watcherStore.listNodes()).find((n) => n.name === 'n1'), moved);

  // n2's agent goes away: its lease (TTL 1 s) is no longer kept alive and its record expires.
  b.close();
  await until('the delete event of n2', 6000, () => events.some((e) => e.type === 'delete' && e.name === 'n2'));
  assert.deepEqual((await watcherStore.listNodes()).map((n) => n.name), ['n1']);
  // Records of another prefix are invisible here.
  assert.deepEqual((await open(t, uniqueKeyPrefix('other')).listNodes()), []);
  assert.deepEqual(lost, []);
  // Every event carries its etcd revision, increasing.
  const revs = events.map((e) => e.revision);
  assert.ok(revs.every((r, i) => Number.isSafeInteger(r) && r > 0 && (i === 0 || r > revs[i - 1]!)), JSON.stringify(revs));
});

test('nodesAt + a watch from its revision + 1: a node registering in between is not missed', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('listwatch');
  const s = open(t, prefix);
  await s.register(rec('n1', 1), 10, () => {});
  const listing = await s.nodesAt();
  assert.deepEqual(listing.nodes, [rec('n1', 1)]);
  // Between the listing and the watch: one node joins, one record changes.
  const other = open(t, prefix);
  await other.register(rec('n2', 2), 10, () => {});
  await s.register({ ...rec('n1', 1), underlayIp: '198.18.0.91' }, 10, () => {});
  const events: NodeEvent[] = [];
  const w = await s.watchNodes((e) => events.push(e), () => {}, listing.revision + 1);
  t.after(() => w.cancel());
  await until('the two changes made before the watch', 3000, () => events.length >= 2);
  assert.deepEqual(events.map((e) => (e.type === 'put' ? `${e.node.name} ${e.node.underlayIp}` : e.name)), ['n2 198.18.0.12', 'n1 198.18.0.91']);
  assert.ok(events.every((e) => e.revision > listing.revision));
  const again = await s.nodesAt();
  assert.ok(again.revision >= events.at(-1)!.revision, 'a later listing includes them');
  // Without a start revision, a watch only sees what happens after it starts.
  const late: NodeEvent[] = [];
  const w2 = await s.watchNodes((e) => late.push(e), () => {});
  t.after(() => w2.cancel());
  await other.register(rec('n3', 3), 10, () => {});
  await until('the put of n3', 3000, () => late.length >= 1);
  assert.deepEqual(late.map((e) => e.type === 'put' && e.node.name), ['n3']);
});

test('lease: kept alive well past its TTL while the store lives, gone within ~TTL after it closes', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('lease');
  const reader = open(t, prefix);
  const a = new EtcdStore(etcd.settings(prefix));
  t.after(() => a.close());
  const lost: Error[] = [];
  await a.register(rec('n1', 1), 1, (e) => lost.push(e));
  await sleep(2500); // 2.5 TTLs: only keepalives keep it
  assert.deepEqual((await reader.listNodes()).map((n) => n.name), ['n1'], 'the keepalive renews the lease');
  assert.deepEqual(lost, []);
  const closed = Date.now();
  a.close();
  await until('the registration to expire', 5000, async () => (await reader.listNodes()).length === 0);
  const gone = Date.now() - closed;
  assert.ok(gone <= 3500, `expired ${gone} ms after the keepalive stopped (TTL 1 s)`);
});

test('claimBlock: racing nodes on two stores never share a block; a restart keeps the block', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('blocks');
  const s1 = open(t, prefix);
  const s2 = open(t, prefix);
  const subnet = '10.244.0.0/19'; // 32 blocks of /24
  const names = Array.from({ length: 24 }, (_, i) => `node-${i}`);
  const claims = await Promise.all(names.map((n, i) => (i % 2 ? s1 : s2).claimBlock(n, subnet, 24)));
  assert.equal(new Set(claims).size, names.length, `every node got its own block: ${claims.join(' ')}`);
  for (const c of claims) {
    assert.ok(containsCidr(parseCidr(subnet)!, parseCidr(c)!), `${c} is inside ${subnet}`);
    assert.match(c, /\/24$/);
  }
  // A new store (the agent restarted) finds the block the node already owns, from either store.
  const s3 = open(t, prefix);
  for (const [i, n] of names.entries()) assert.equal(await (i % 2 ? s3 : s1).claimBlock(n, subnet, 24), claims[i]);
  // A second round of racing claims by the same nodes changes nothing.
  assert.deepEqual(await Promise.all(names.map((n, i) => (i % 2 ? s2 : s3).claimBlock(n, subnet, 24))), claims);
});

test('claimBlock: a full subnet is BlocksExhausted, also when nodes race for the last blocks', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('exhaust');
  const s1 = open(t, prefix);
  const s2 = open(t, prefix);
  const subnet = '10.250.0.0/26'; // 4 blocks of /28
  const results = await Promise.allSettled(Array.from({ length: 7 }, (_, i) => (i % 2 ? s1 : s2).claimBlock(`n${i}`, subnet, 28)));
  const won = results.filter((r): r is PromiseFulfilledResult<string> => r.status === 'fulfilled').map((r) => r.value);
  const lostOut = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as Error);
  assert.deepEqual(won.sort(), ['10.250.0.0/28', '10.250.0.16/28', '10.250.0.32/28', '10.250.0.48/28']);
  assert.equal(lostOut.length, 3);
  for (const e of lostOut) {
    assert.ok(e instanceof BlocksExhausted, String(e));
    assert.match(e.message, /every \/28 block of 10\.250\.0\.0\/26 is owned/);
  }
  await assert.rejects(s1.claimBlock('late', subnet, 28), BlocksExhausted);
});

test('reserve: of many attachments racing for one address on two stores, exactly one wins', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('reserve');
  const s1 = open(t, prefix);
  const s2 = open(t, prefix);
  for (let round = 0; round < 5; round++) {
    const ip = `10.244.1.${10 + round}`;
    const outcomes = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? s1 : s2).reserve(ip, { ...key(`c${round}-${i}`), node: 'n1' })));
    assert.equal(outcomes.filter((o) => o === 'ok').length, 1, `round ${round}: ${JSON.stringify(outcomes)}`);
    assert.equal(outcomes.filter((o) => o === 'taken').length, 15);
    const winner = outcomes.indexOf('ok');
    assert.equal(await s1.handleOf(key(`c${round}-${winner}`)), ip);
    for (let i = 0; i < 16; i++) if (i !== winner) assert.equal(await s2.handleOf(key(`c${round}-${i}`)), null, 'a loser has no handle');
    const reserved = await s1.reservedIn((x) => x === ip);
    assert.deepEqual([...reserved.entries()], [[ip, { ...key(`c${round}-${winner}`), node: 'n1' }]]);
  }
});

test('reserve: the same attachment again gets {existing}; unreserve only when the handle matches', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('handle');
  const s = open(t, prefix);
  const k = { ...key('ctr-a'), node: 'n1' };
  assert.equal(await s.reserve('10.244.1.5', k), 'ok');
  assert.deepEqual(await s.reserve('10.244.1.5', k), { existing: '10.244.1.5' });
  assert.deepEqual(await s.reserve('10.244.1.6', k), { existing: '10.244.1.5' }, 'one address per attachment');
  assert.deepEqual([...(await s.reservedIn(() => true)).keys()], ['10.244.1.5'], '.6 was not reserved');
  // Same container, another interface: a different attachment.
  assert.equal(await s.reserve('10.244.1.6', { ...key('ctr-a', 'net1'), node: 'n1' }), 'ok');
  // Both concurrently for the same attachment: one ok, the other sees the winner's address.
  const both = await Promise.all([s.reserve('10.244.1.7', { ...key('ctr-b'), node: 'n1' }), s.reserve('10.244.1.8', { ...key('ctr-b'), node: 'n1' })]);
  assert.equal(both.filter((o) => o === 'ok').length, 1);
  const other = both.find((o) => o !== 'ok') as { existing: string };
  assert.equal(other.existing, both[0] === 'ok' ? '10.244.1.7' : '10.244.1.8');

  assert.equal(await s.unreserve(key('ctr-a'), '10.244.1.6'), false, 'the handle names .5, not .6');
  assert.equal(await s.handleOf(key('ctr-a', 'net1')), '10.244.1.6', 'net1 keeps .6');
  assert.equal(await s.unreserve(key('ctr-x'), '10.244.1.5'), false, 'no handle: nothing released');
  assert.equal(await s.handleOf(key('ctr-a')), '10.244.1.5');
  assert.equal(await s.unreserve(key('ctr-a'), '10.244.1.5'), true);
  assert.equal(await s.handleOf(key('ctr-a')), null);
  assert.equal(await s.unreserve(key('ctr-a'), '10.244.1.5'), false, 'a second release finds nothing');
  assert.deepEqual([...(await s.reservedIn(() => true)).keys()].sort(), ['10.244.1.6', both[0] === 'ok' ? '10.244.1.7' : '10.244.1.8']);
  // The address is free again for anybody.
  assert.equal(await s.reserve('10.244.1.5', { ...key('ctr-c'), node: 'n2' }), 'ok');
});

test('deleteIfUnchanged: removes a reservation only if it still holds the given value', { skip }, async (t) => {
  const s = open(t, uniqueKeyPrefix('orphan'));
  const k = { ...key('ctr-a'), node: 'n1' };
  assert.equal(await s.reserve('10.244.1.5', k), 'ok');
  assert.equal(await s.deleteIfUnchanged('10.244.1.5', JSON.stringify({ ...k, node: 'n2' })), false);
  assert.equal((await s.reservedIn(() => true)).size, 1);
  assert.equal(await s.deleteIfUnchanged('10.244.1.5', JSON.stringify(k)), true);
  assert.equal((await s.reservedIn(() => true)).size, 0);
});

test('a frozen etcd: every call fails with DatastoreUnavailable within the timeout, and recovers', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('frozen');
  const s = open(t, prefix, 500);
  await s.ping();
  assert.equal(await s.reserve('10.244.1.5', { ...key('before'), node: 'n1' }), 'ok');
  etcd.pause();
  t.after(() => etcd.resume());
  const calls: [string, () => Promise<unknown>][] = [
    ['ping', () => s.ping()],
    ['reserve', () => s.reserve('10.244.1.6', { ...key('during'), node: 'n1' })],
    ['listNodes', () => s.listNodes()],
    ['claimBlock', () => s.claimBlock('n1', '10.244.0.0/16', 24)],
    ['handleOf', () => s.handleOf(key('before'))],
  ];
  for (const [what, call] of calls) {
    const started = Date.now();
    await assert.rejects(call(), (e: Error) => e instanceof DatastoreUnavailable, what);
    const took = Date.now() - started;
    assert.ok(took >= 450 && took < 1500, `${what} failed after ${took} ms (timeout 500 ms)`);
  }
  etcd.resume();
  await until('etcd to answer again', 5000, async () => {
    try {
      await s.ping();
      return true;
    } catch {
      return null;
    }
  });
  assert.equal(await s.handleOf(key('before')), '10.244.1.5');
  // What timed out may or may not have been applied by etcd later; it is never applied twice.
  const during = await s.handleOf(key('during'));
  assert.ok(during === null || during === '10.244.1.6');
  assert.equal(await s.reserve('10.244.1.7', { ...key('after'), node: 'n1' }), 'ok');
});

test('etcd restart on the same data dir keeps blocks and reservations; an open store reconnects', { skip }, async (t) => {
  const own = new TestEtcd('restart');
  t.after(() => own.destroy());
  await own.run();
  const prefix = uniqueKeyPrefix('restart');
  const s = new EtcdStore(own.settings(prefix));
  t.after(() => s.close());
  const block = await s.claimBlock('n1', '10.244.0.0/16', 24);
  assert.equal(await s.reserve('10.244.0.9', { ...key('kept'), node: 'n1' }), 'ok');
  await own.stop();
  await assert.rejects(s.ping(), DatastoreUnavailable);
  await own.run();
  await until('the open store to reconnect', 10_000, async () => {
    try {
      await s.ping();
      return true;
    } catch {
      return null;
    }
  });
  assert.equal(await s.handleOf(key('kept')), '10.244.0.9');
  const fresh = new EtcdStore(own.settings(prefix));
  t.after(() => fresh.close());
  assert.equal(await fresh.claimBlock('n1', '10.244.0.0/16', 24), block);
  assert.deepEqual([...(await fresh.reservedIn(() => true)).entries()], [['10.244.0.9', { ...key('kept'), node: 'n1' }]]);
  assert.equal(await fresh.reserve('10.244.0.9', { ...key('new'), node: 'n1' }), 'taken');
});
