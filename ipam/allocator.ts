// Allocation over any reservation backend that can create-if-absent: bounded (one pass over
// the range), concurrency-safe (the backend's create is atomic), never read-then-write.
import { formatIp, parseIp } from '../lib/ipv4.ts';
import { CniError, Code } from '../model/errors.ts';
import { candidates, leaseFor, type Pool } from './pool.ts';
import type { AttachmentKey } from './store.ts';
import type { Lease } from '../model/lease.ts';

export interface Reservations {
  /** Atomically records ip -> key; false when the ip is taken. */
  tryReserve(ip: string, key: AttachmentKey): boolean;
  isReserved(ip: string): boolean;
  readCursor(): string | null;
  writeCursor(ip: string): void;
}

export function allocate(pool: Pool, store: Reservations, key: AttachmentKey): Lease {
  const cursorText = store.readCursor();
  const cursor = cursorText ? parseIp(cursorText) : null;
  for (const ip of candidates(pool, cursor)) {
    const text = formatIp(ip);
    if (store.tryReserve(text, key)) {
      store.writeCursor(text);
      return leaseFor(pool, ip);
    }
  }
  throw new CniError(Code.PoolExhausted, 'address pool exhausted',
    `no free address in ${formatIp(pool.first)}-${formatIp(pool.last)}`);
}

/** The address allocate() would pick, without reserving it. */
export function peek(pool: Pool, store: Reservations): Lease {
  const cursorText = store.readCursor();
  for (const ip of candidates(pool, cursorText ? parseIp(cursorText) : null)) {
    if (!store.isReserved(formatIp(ip))) return leaseFor(pool, ip);
  }
  throw new CniError(Code.PoolExhausted, 'address pool exhausted', `no free address in ${formatIp(pool.first)}-${formatIp(pool.last)}`);
}
