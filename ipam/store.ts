// What the plugin asks of IPAM, whichever store answers: the node-local file store or
// (cluster IPAM) the node agent.
import type { Lease, AttachmentKey } from '../model/lease.ts';

export type { AttachmentKey } from '../model/lease.ts';

export interface Reservation extends AttachmentKey {
  ip: string;
}

export interface IpamStatus {
  ready: boolean;
  used: number;
  free: number;
  reason?: string;
}

export interface IpamStore {
  /** Reserves one address for the attachment; code 100 when the pool is exhausted. */
  allocate(key: AttachmentKey): Promise<Lease>;
  /** The address the attachment holds, if any. */
  find(key: AttachmentKey): Promise<string | null>;
  /** Releases what the attachment holds (the hinted address first); missing is success. */
  release(key: AttachmentKey, hint?: string | null): Promise<string[]>;
  /** Releases every reservation whose attachment is not in `valid`. */
  gc(valid: AttachmentKey[], graceMs?: number): Promise<string[]>;
  /** The address an allocation would get now, reserving nothing (for dry runs). */
  peek(): Promise<Lease>;
  status(): Promise<IpamStatus>;
}

export function keyString(k: AttachmentKey): string {
  return `${k.containerId}/${k.ifName}`;
}
