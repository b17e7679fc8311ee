// Cluster IPAM for this node's block: addresses are reserved in etcd with create-if-absent
// transactions; a local cache of the block's reservations saves round trips, and a stale cache
// only costs a retry, never a duplicate.
import { parseCidr, formatIp, parseIp, lastIp } from '../lib/ipv4.ts';
import { fnv1a64 } from '../lib/hash.ts';
import { candidates, capacity, leaseFor, type Pool } from '../ipam/pool.ts';
import type { AttachmentKey } from '../model/lease.ts';
import { keyString } from '../ipam/store.ts';
import type { Lease } from '../model/lease.ts';
import type { EtcdStore } from './datastore/etcd-store.ts';
import type { IpRecord } from './datastore/keys.ts';

export class PoolExhausted extends Error {}

/** Requests that wait while a transaction is in flight are committed together, at most this
 *  many at a time (two compares and two puts each; etcd allows 128 operations per txn). */
export const MAX_BATCH = 32;

interface Waiting {
  key: AttachmentKey;
  resolve(lease: Lease): void;
  reject(err: unknown): void;
}

export function poolOfBlock(block: string): Pool {
  const c = parseCidr(block)!;
  return { first: c.base + 1, last: lastIp(c) - 1, gateway: c.base + 1, prefix: c.prefix };
}

/** Where in a shared range a node starts allocating: a place derived from its name. */
export function spreadStart(pool: Pool, node: string): number {
  const size = pool.last - pool.first + 1;
  return pool.first + (parseInt(fnv1a64(`start/${node}`).slice(0, 8), 16) % size);
}

export class IpamService {
  readonly pool: Pool;
  private used = new Map<string, IpRecord | 'pending'>();
  private cursor: number | null = null;
  private queue: Waiting[] = [];
  private pumping = false;

  /**
   * `block`: the node's own block (the pool is all of it), or, for a range every node shares
   * (`shared`: ipvlan, macvlan on the node network), the network the range is on. Reservations
   * are per address either way, so nodes sharing a range never hand out one address twice;
   * each starts at its own place in it, so they seldom race for the same one.
   */
  constructor(
    private readonly store: EtcdStore,
    private readonly node: string,
    readonly block: string,
    shared?: Pool,
  ) {
    this.pool = shared ?? poolOfBlock(block);
    if (shared) this.cursor = spreadStart(shared, node);
  }

  async load(): Promise<void> {
    const { first, last } = this.pool;
    const reserved = await this.store.reservedIn((ip) => {
      const n = parseIp(ip);
      return n !== null && n >= first && n <= last;
    });
    this.used = new Map(reserved);
  }

  stats(): { used: number; free: number } {
    return { used: this.used.size, free: capacity(this.pool) - this.used.size };
  }

  /**
   * Group commit: a request that arrives while a transaction is in flight waits for it, then
   * goes with every other waiting request in one transaction. Under a burst of ADDs this turns
   * N etcd round trips into a few; alone, a request goes straight through.
   */
  allocate(key: AttachmentKey): Promise<Lease> {
    return new Promise<Lease>((resolve, reject) => {
      this.queue.push({ key, resolve, reject });
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0) {
        // One request per attachment in a batch: a txn may not name a key twice.
        const batch: Waiting[] = [];
        const later: Waiting[] = [];
        const seen = new Set<string>();
        for (const w of this.queue) {
          const id = keyString(w.key);
          if (batch.length < MAX_BATCH && !seen.has(id)) {
            seen.add(id);
            batch.push(w);
          } else later.push(w);
        }
        this.queue = later;
        await this.allocateBatch(batch);
      }
    } finally {
      this.pumping = false;
    }
  }

  private async allocateBatch(batch: Waiting[]): Promise<void> {
    if (batch.length > 1) {
      const picks: number[] = [];
      for (const n of candidates(this.pool, this.cursor)) {
        if (picks.length === batch.length) break;
        if (!this.used.has(formatIp(n))) picks.push(n);
      }
      if (picks.length === batch.length) {
        const items = batch.map((w, i) => ({ ip: formatIp(picks[i]!), rec: { containerId: w.key.containerId, ifName: w.key.ifName, node: this.node } }));
        for (const it of items) this.used.set(it.ip, 'pending');
        let ok = false;
        try {
          ok = await this.store.reserveMany(items);
        } catch (e) {
          for (const it of items) this.used.delete(it.ip);
          for (const w of batch) w.reject(e);
          return;
        }
        if (ok) {
          items.forEach((it) => this.used.set(it.ip, it.rec));
          this.cursor = picks[picks.length - 1]!;
          batch.forEach((w, i) => w.resolve(leaseFor(this.pool, picks[i]!)));
          return;
        }
        for (const it of items) this.used.delete(it.ip);
      }
      // A conflict (a stale cache, a retried ADD) or too few free addresses in the cache:
      // settle each request on its own, exactly.
    }
    for (const w of batch) {
      try {
        w.resolve(await this.allocateOne(w.key));
      } catch (e) {
        w.reject(e);
      }
    }
  }

  private async allocateOne(key: AttachmentKey): Promise<Lease> {
    const rec: IpRecord = { containerId: key.containerId, ifName: key.ifName, node: this.node };
    // One pass over the block at most: bounded, whatever the cache says.
    for (const n of candidates(this.pool, this.cursor)) {
      const ip = formatIp(n);
      if (this.used.has(ip)) continue;
      this.used.set(ip, 'pending'); // concurrent requests in this process skip it meanwhile
      let outcome: Awaited<ReturnType<EtcdStore['reserve']>>;
      try {
        outcome = await this.store.reserve(ip, rec);
      } catch (e) {
        this.used.delete(ip);
        throw e;
      }
      if (outcome === 'ok') {
        this.used.set(ip, rec);
        this.cursor = n;
        return leaseFor(this.pool, n);
      }
      if (outcome === 'taken') {
        this.used.set(ip, { containerId: '?', ifName: '?', node: '?' }); // somebody's; the cache was stale
        continue;
      }
      this.used.delete(ip);
      // The attachment holds an address already (a retried ADD): hand that one back.
      return leaseFor(this.pool, parseIp(outcome.existing)!);
    }
    throw new PoolExhausted(`no free address in block ${this.block}`);
  }

  async find(key: AttachmentKey): Promise<string | null> {
    return this.store.handleOf(key);
  }

  async release(key: AttachmentKey): Promise<string[]> {
    const ip = await this.store.handleOf(key);
    if (!ip) return [];
    const done = await this.store.unreserve(key, ip);
    if (done) this.used.delete(ip);
    return done ? [ip] : [];
  }

  /** Releases every reservation of this node whose attachment is not in `valid`. */
  async gc(valid: AttachmentKey[]): Promise<string[]> {
    const keep = new Set(valid.map(keyString));
    await this.load();
    const released: string[] = [];
    for (const [ip, rec] of this.used) {
      if (rec === 'pending' || rec.node !== this.node || keep.has(keyString(rec))) continue;
      if (await this.store.unreserve(rec, ip)) {
        this.used.delete(ip);
        released.push(ip);
      } else if (await this.store.deleteIfUnchanged(ip, JSON.stringify(rec))) {
        this.used.delete(ip);
        released.push(ip);
      }
    }
    return released.sort();
  }
}
