// IpamService (cluster IPAM over this node's block) against a real etcd: concurrent allocators
// in one process and a second instance with a stale cache, exhaustion, gc, restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { EtcdStore } from '../../agent/datastore/etcd-store.ts';
import { IpamService, PoolExhausted, poolOfBlock } from '../../agent/ipam-service.ts';
import type { IpRecord } from '../../agent/datastore/keys.ts';
import { capacity } from '../../ipam/pool.ts';
import { parseCidr, parseIp, contains } from '../../lib/ipv4.ts';
import { TestEtcd, etcdAvailable, uniqueKeyPrefix } from '../helpers/etcd.ts';

const skip = etcdAvailable() ?? false;

/** Counts the datastore round trips that try to reserve addresses, and the group commits
 *  that failed on a conflict (each then settled one by one with reserve()). */
class CountingStore extends EtcdStore {
  reserves = 0;
  batches = 0;
  conflicts = 0;
  override reserve(ip: string, rec: IpRecord) {
    this.reserves++;
    return super.reserve(ip, rec);
  }
  override async reserveMany(items: { ip: string; rec: IpRecord }[]) {
    this.batches++;
    const ok = await super.reserveMany(items);
    if (!ok) this.conflicts++;
    return ok;
  }
}

const etcd = new TestEtcd('ipam');
before(async () => {
  if (!skip) await etcd.run();
});
after(() => etcd.destroy());

function store(t: { after: (fn: () => void) => void }, prefix: string): CountingStore {
  const s = new CountingStore(etcd.settings(prefix));
  t.after(() => s.close());
  return s;
}

const key = (c: string) => ({ containerId: c, ifName: 'eth0' });
const addr = (lease: { address: string }) => lease.address.split('/')[0]!;

test('poolOfBlock: every address of the block but network, gateway (.1) and broadcast', () => {
  const p = poolOfBlock('10.244.3.0/24');
  assert.equal(capacity(p), 253);
  assert.equal(capacity(poolOfBlock('10.244.3.0/29')), 5);
  assert.equal(p.gateway, parseIp('10.244.3.1'));
});

test('8 concurrent allocators and a second instance with a stale cache never hand out the same address', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('conc');
  const block = '10.244.6.0/23';
  const s1 = store(t, prefix);
  const s2 = store(t, prefix);
  const a = new IpamService(s1, 'n1', block);
  const b = new IpamService(s2, 'n1', block); // a restarted agent overlapping the old one
  await a.load();
  await b.load();
  // b's cache goes stale: it knows none of these, so its first picks collide with them.
  const results: [string, string][] = [];
  for (let i = 0; i < 20; i++) results.push([`early-${i}`, addr(await a.allocate(key(`early-${i}`)))]);
  const perWorker = 25;
  const worker = (svc: IpamService, tag: string) => async () => {
    const got: [string, string][] = [];
    for (let i = 0; i < perWorker; i++) {
      const id = `${tag}-${i}`;
      got.push([id, addr(await svc.allocate(key(id)))]);
    }
    return got;
  };
  const workers = [
    ...Array.from({ length: 8 }, (_, w) => worker(a, `a${w}`)),
    ...Array.from({ length: 2 }, (_, w) => worker(b, `b${w}`)),
  ];
  results.push(...(await Promise.all(workers.map((w) => w()))).flat());
  const ips = results.map(([, ip]) => ip);
  assert.equal(results.length, 270);
  assert.equal(new Set(ips).size, ips.length, 'no address handed out twice');
  const cidr = parseCidr(block)!;
  for (const ip of ips) {
    assert.ok(contains(cidr, parseIp(ip)!), `${ip} in ${block}`);
    assert.ok(!['10.244.6.0', '10.244.6.1', '10.244.7.255'].includes(ip), `${ip} is not network, gateway or broadcast`);
  }
  // etcd agrees: one reservation per attachment, naming it.
  const reserved = await s1.reservedIn(() => true);
  assert.equal(reserved.size, 270);
  for (const [id, ip] of results) assert.deepEqual(reserved.get(ip), { ...key(id), node: 'n1' });
  // The caches disagreed, and that was met and settled (without it this test proves nothing).
  assert.ok(s1.conflicts + s2.conflicts > 0 || s2.reserves > 0, `conflicts: ${s1.conflicts}+${s2.conflicts} failed group commits, ${s2.reserves} single reserves by the stale instance`);
  assert.ok(s1.batches > 0, 'concurrent requests were committed in groups');
  // Asked again, every attachment gets its own address back.
  assert.equal(addr(await b.allocate(key('a0-0'))), results.find(([id]) => id === 'a0-0')![1]);
  assert.equal(addr(await a.allocate(key('b1-3'))), results.find(([id]) => id === 'b1-3')![1]);
});

test('exhaustion on a /29 block: PoolExhausted after at most one pass over the block', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('full');
  const block = '10.244.9.0/29';
  const s1 = store(t, prefix);
  const a = new IpamService(s1, 'n1', block);
  await a.load();
  const got = await Promise.all([1, 2, 3, 4, 5, 6, 7].map((i) => a.allocate(key(`c${i}`)).then(addr, (e: Error) => e)));
  const ok = got.filter((x): x is string => typeof x === 'string');
  const failed = got.filter((x): x is Error => x instanceof Error);
  assert.deepEqual(ok.sort(), ['10.244.9.2', '10.244.9.3', '10.244.9.4', '10.244.9.5', '10.244.9.6']);
  assert.equal(failed.length, 2);
  for (const e of failed) assert.ok(e instanceof PoolExhausted && /no free address in block 10\.244\.9\.0\/29/.test(e.message), String(e));
  // The cache knows the block is full: no round trip at all.
  const before = s1.reserves;
  await assert.rejects(a.allocate(key('c8')), PoolExhausted);
  assert.equal(s1.reserves, before);
  // An instance whose cache knows nothing: one try per address, then PoolExhausted.
  const s2 = store(t, prefix);
  const cold = new IpamService(s2, 'n1', block);
  await assert.rejects(cold.allocate(key('c9')), PoolExhausted);
  assert.equal(s2.reserves, 5);
  // A release frees exactly that address, and the next allocation gets it.
  const c3 = await a.find(key('c3'));
  assert.ok(c3 === null || ok.includes(c3));
  const holder = c3 === null ? 'c6' : 'c3'; // c3 may have been one of the two refused
  const ip = (await a.find(key(holder)))!;
  assert.deepEqual(await a.release(key(holder)), [ip]);
  assert.equal(await a.find(key(holder)), null);
  assert.deepEqual(await a.release(key(holder)), [], 'releasing twice finds nothing');
  assert.equal(addr(await a.allocate(key('c10'))), ip);
  await assert.rejects(a.allocate(key('c11')), PoolExhausted);
});

test('gc releases exactly the reservations of attachments that are not valid', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('gc');
  const block = '10.244.11.0/24';
  const s = store(t, prefix);
  const svc = new IpamService(s, 'n1', block);
  await svc.load();
  const ids = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
  const ips = new Map<string, string>();
  for (const id of ids) ips.set(id, addr(await svc.allocate(key(id))));
  // Not ours to collect: another node's reservation inside this block (written by hand), and a
  // reservation outside the block.
  assert.equal(await s.reserve('10.244.11.200', { ...key('foreign'), node: 'n2' }), 'ok');
  assert.equal(await s.reserve('10.244.12.5', { ...key('elsewhere'), node: 'n1' }), 'ok');
  // Orphans (written by hand or by an older version): a reservation without a handle, and one
  // naming an invalid attachment whose handle names another address.
  const raw = new Etcd3({ hosts: [etcd.endpoint] });
  t.after(() => raw.close());
  await raw.put(s.keys.ip('10.244.11.201')).value(JSON.stringify({ ...key('ghost'), node: 'n1' }));
  await raw.put(s.keys.ip('10.244.11.202')).value(JSON.stringify({ ...key('p2'), node: 'n1' }));

  const valid = ['p1', 'p3', 'p5'].map(key);
  const released = await svc.gc(valid);
  assert.deepEqual(released, [ips.get('p2'), ips.get('p4'), ips.get('p6'), '10.244.11.201', '10.244.11.202'].sort());
  const left = await s.reservedIn(() => true);
  assert.deepEqual([...left.keys()].sort(), [ips.get('p1'), ips.get('p3'), ips.get('p5'), '10.244.11.200', '10.244.12.5'].sort());
  for (const id of ['p1', 'p3', 'p5']) assert.equal(await svc.find(key(id)), ips.get(id));
  for (const id of ['p2', 'p4', 'p6']) assert.equal(await svc.find(key(id)), null);
  assert.deepEqual(await svc.gc(valid), [], 'a second gc has nothing left to do');
  assert.equal(svc.stats().used, 4, 'the cache follows: 3 valid + the foreign one in the block');
});

test('load() after a restart sees the existing reservations: no retries, no duplicates', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('restart');
  const block = '10.244.13.0/24';
  const old = new IpamService(store(t, prefix), 'n1', block);
  await old.load();
  const before = new Set<string>();
  for (let i = 0; i < 20; i++) before.add(addr(await old.allocate(key(`old${i}`))));
  const s = store(t, prefix);
  const fresh = new IpamService(s, 'n1', block);
  await fresh.load();
  assert.deepEqual(fresh.stats(), { used: 20, free: 233 });
  const next = addr(await fresh.allocate(key('new0')));
  assert.ok(!before.has(next));
  assert.equal(s.reserves, 1, 'the loaded cache skipped every taken address without asking etcd');
  assert.equal(addr(await fresh.allocate(key('old7'))), [...before][7], 'an attachment from before the restart keeps its address');
});

test('a burst of allocations is committed in a few transactions, each address once', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('burst');
  const s = store(t, prefix);
  const svc = new IpamService(s, 'n1', '10.244.11.0/24');
  await svc.load();
  const leases = await Promise.all(Array.from({ length: 64 }, (_, i) => svc.allocate(key(`burst-${i}`))));
  const ips = leases.map(addr);
  assert.equal(new Set(ips).size, 64);
  assert.ok(s.batches + s.reserves < 64 / 2, `64 allocations took ${s.batches} group commits and ${s.reserves} single ones`);
  const reserved = await s.reservedIn(() => true);
  ips.forEach((ip, i) => assert.deepEqual(reserved.get(ip), { ...key(`burst-${i}`), node: 'n1' }));
});

test('one range on the node network shared by three nodes: no address twice, each node starts elsewhere, then exhaustion', { skip }, async (t) => {
  const prefix = uniqueKeyPrefix('shared');
  const subnet = '198.18.0.0/24';
  const pool = { first: parseIp('198.18.0.100')!, last: parseIp('198.18.0.159')!, gateway: parseIp('198.18.0.1')!, prefix: 24 };
  const nodes = ['n1', 'n2', 'n3'].map((n) => new IpamService(store(t, prefix), n, subnet, pool));
  for (const n of nodes) await n.load();
  const firsts = await Promise.all(nodes.map((n, i) => n.allocate(key(`first-${i}`))));
  assert.equal(new Set(firsts.map(addr)).size, 3, `each node starts at its own place: ${firsts.map(addr).join(' ')}`);
  for (const l of firsts) assert.equal(l.gateway, '198.18.0.1');
  for (const l of firsts) assert.match(l.address, /\/24$/, 'the node network\'s prefix');
  // The rest of the range in concurrent bursts from every node (their caches know nothing of
  // each other's picks): 60 addresses, 60 distinct, all inside the range.
  const burst = await Promise.all(nodes.flatMap((n, i) => Array.from({ length: 19 }, (_, j) => n.allocate(key(`b-${i}-${j}`)))));
  const all = [...firsts, ...burst].map(addr);
  assert.equal(all.length, 60);
  assert.equal(new Set(all).size, 60, 'no address handed out twice');
  for (const ip of all) assert.ok(parseIp(ip)! >= pool.first && parseIp(ip)! <= pool.last, `${ip} inside the range`);
  await assert.rejects(nodes[1]!.allocate(key('one-too-many')), PoolExhausted);
  // Released on one node, taken by another.
  const [released] = await nodes[0]!.release(key('first-0'));
  assert.equal(released, addr(firsts[0]!));
  assert.equal(addr(await nodes[2]!.allocate(key('late'))), released);
});
