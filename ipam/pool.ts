// The address pool of a node: range bounds, the gateway (never handed out), the prefix.
import { parseIp, parseCidr, formatIp } from '../lib/ipv4.ts';
import type { IpamConfig } from '../model/config.ts';
import type { Lease } from '../model/lease.ts';

export interface Pool {
  first: number;
  last: number;
  gateway: number;
  prefix: number;
}

export function poolOf(ipam: IpamConfig): Pool {
  return {
    first: parseIp(ipam.rangeStart)!,
    last: parseIp(ipam.rangeEnd)!,
    gateway: parseIp(ipam.gateway)!,
    prefix: parseCidr(ipam.block)!.prefix,
  };
}

export function capacity(pool: Pool): number {
  const n = pool.last - pool.first + 1;
  return pool.gateway >= pool.first && pool.gateway <= pool.last ? n - 1 : n;
}

export function leaseFor(pool: Pool, ip: number): Lease {
  return { address: `${formatIp(ip)}/${pool.prefix}`, gateway: formatIp(pool.gateway) };
}

/** Candidates in allocation order: after the cursor, wrapping once around the range. */
export function* candidates(pool: Pool, cursor: number | null): Generator<number> {
  const size = pool.last - pool.first + 1;
  const start = cursor !== null && cursor >= pool.first && cursor <= pool.last ? cursor - pool.first + 1 : 0;
  for (let i = 0; i < size; i++) {
    const ip = pool.first + ((start + i) % size);
    if (ip !== pool.gateway) yield ip;
  }
}
