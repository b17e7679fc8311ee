import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocate, peek, type Reservations } from '../../ipam/allocator.ts';
import { capacity, candidates, type Pool } from '../../ipam/pool.ts';
import { parseIp, formatIp } from '../../lib/ipv4.ts';
import { CniError } from '../../model/errors.ts';
import type { AttachmentKey } from '../../model/lease.ts';

class MemoryReservations implements Reservations {
  taken = new Map<string, AttachmentKey>();
  cursor: string | null = null;
  attempts = 0;
  tryReserve(ip: string, key: AttachmentKey): boolean {
    this.attempts++;
    if (this.taken.has(ip)) return false;
    this.taken.set(ip, key);
    return true;
  }
  isReserved(ip: string): boolean {
    return this.taken.has(ip);
  }
  readCursor(): string | null {
    return this.cursor;
  }
  writeCursor(ip: string): void {
    this.cursor = ip;
  }
}

const pool = (first: string, last: string, gateway: string, prefix = 24): Pool => ({
  first: parseIp(first)!, last: parseIp(last)!, gateway: parseIp(gateway)!, prefix,
});
const key = (n: number) => ({ containerId: `c${n}`, ifName: 'eth0' });

test('allocates in order after the cursor, skipping the gateway', () => {
  const p = pool('10.244.1.1', '10.244.1.254', '10.244.1.1');
  const store = new MemoryReservations();
  const got = [1, 2, 3].map((n) => allocate(p, store, key(n)));
  assert.deepEqual(got, [
    { address: '10.244.1.2/24', gateway: '10.244.1.1' },
    { address: '10.244.1.3/24', gateway: '10.244.1.1' },
    { address: '10.244.1.4/24', gateway: '10.244.1.1' },
  ]);
  assert.equal(store.cursor, '10.244.1.4');
});

test('a released address is not reused until the cursor wraps round', () => {
  const p = pool('10.0.0.2', '10.0.0.5', '10.0.0.1');
  const store = new MemoryReservations();
  for (let n = 0; n < 3; n++) allocate(p, store, key(n)); // .2 .3 .4
  store.taken.delete('10.0.0.2');
  assert.equal(allocate(p, store, key(9)).address, '10.0.0.5/24');
  assert.equal(allocate(p, store, key(10)).address, '10.0.0.2/24', 'wraps to the freed one');
});

test('exhaustion is code 100 after exactly one pass over the range', () => {
  const p = pool('10.0.0.1', '10.0.0.6', '10.0.0.1');
  const store = new MemoryReservations();
  for (let n = 0; n < capacity(p); n++) allocate(p, store, key(n));
  store.attempts = 0;
  assert.throws(() => allocate(p, store, key(99)), (e: unknown) => e instanceof CniError && e.code === 100 && /exhausted/.test(e.message));
  assert.equal(store.attempts, capacity(p), 'tries every address once, no more');
  assert.throws(() => peek(p, store), (e: unknown) => e instanceof CniError && e.code === 100);
});

test('a cursor outside the range (config changed) starts from the first address', () => {
  const p = pool('10.0.0.10', '10.0.0.12', '10.0.0.1');
  assert.deepEqual([...candidates(p, parseIp('10.0.0.200'))].map(formatIp), ['10.0.0.10', '10.0.0.11', '10.0.0.12']);
  assert.deepEqual([...candidates(p, parseIp('10.0.0.11'))].map(formatIp), ['10.0.0.12', '10.0.0.10', '10.0.0.11']);
});

test('peek reserves nothing', () => {
  const p = pool('10.0.0.2', '10.0.0.5', '10.0.0.1');
  const store = new MemoryReservations();
  assert.equal(peek(p, store).address, '10.0.0.2/24');
  assert.equal(store.taken.size, 0);
  assert.equal(store.cursor, null);
});
