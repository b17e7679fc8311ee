// The node-local IPAM store in host-local's on-disk layout: <dataDir>/<network>/<ip> holds
// "containerId\r\nifName", last_reserved_ip.0 is the cursor. A reservation is made by
// hard-linking a fully written temp file to the IP's name: exclusive like O_EXCL, and a crash
// never leaves a half-written reservation. Temp files are named by attachment so DEL finds them.
import { readFileSync, writeFileSync, readdirSync, linkSync, accessSync, statSync, constants } from 'node:fs';
import { join } from 'node:path';
import { ensureDir, removeIfExists } from '../lib/atomic-file.ts';
import { fnv1a64 } from '../lib/hash.ts';
import { parseIp } from '../lib/ipv4.ts';
import { allocate, peek, type Reservations } from './allocator.ts';
import { capacity, type Pool } from './pool.ts';
import { keyString, type AttachmentKey, type IpamStore, type IpamStatus, type Reservation } from './store.ts';
import type { Lease } from '../model/lease.ts';

const CURSOR = 'last_reserved_ip.0';
const LINE_BREAK = '\r\n'; // host-local's separator

export class FileStore implements IpamStore, Reservations {
  readonly dir: string;

  constructor(dataDir: string, network: string, private readonly pool: Pool) {
    this.dir = join(dataDir, network);
  }

  private tmpFor(key: AttachmentKey): string {
    return join(this.dir, `.reserving-${fnv1a64(keyString(key))}`);
  }

  tryReserve(ip: string, key: AttachmentKey): boolean {
    const tmp = this.tmpFor(key);
    // Private to this attachment (callers hold its lock): a plain write is enough before the link.
    writeFileSync(tmp, `${key.containerId}${LINE_BREAK}${key.ifName}`, { mode: 0o600 });
    try {
      linkSync(tmp, join(this.dir, ip));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    } finally {
      removeIfExists(tmp);
    }
  }

  isReserved(ip: string): boolean {
    try {
      accessSync(join(this.dir, ip), constants.F_OK);
      return true;
    } catch {
      return false;
    }
  }

  readCursor(): string | null {
    try {
      return readFileSync(join(this.dir, CURSOR), 'utf8').trim() || null;
    } catch {
      return null;
    }
  }

  /** The cursor is only a hint (a torn one reads as no cursor), so it is overwritten in place. */
  writeCursor(ip: string): void {
    writeFileSync(join(this.dir, CURSOR), ip, { mode: 0o600 });
  }

  private ownerOf(ip: string): AttachmentKey | null {
    try {
      const [containerId, ifName] = readFileSync(join(this.dir, ip), 'utf8').split(LINE_BREAK);
      return containerId ? { containerId: containerId.trim(), ifName: (ifName ?? '').trim() } : null;
    } catch {
      return null;
    }
  }

  private mtimeMs(f: string): number {
    try {
      return statSync(join(this.dir, f)).mtimeMs;
    } catch {
      return 0;
    }
  }

  private files(): string[] {
    try {
      return readdirSync(this.dir);
    } catch {
      return [];
    }
  }

  list(): Reservation[] {
    const out: Reservation[] = [];
    for (const f of this.files()) {
      if (parseIp(f) === null) continue;
      const owner = this.ownerOf(f);
      if (owner) out.push({ ip: f, ...owner });
    }
    return out;
  }

  async allocate(key: AttachmentKey): Promise<Lease> {
    ensureDir(this.dir, 0o755);
    return allocate(this.pool, this, key);
  }

  async find(key: AttachmentKey): Promise<string | null> {
    return this.list().find((r) => r.containerId === key.containerId && r.ifName === key.ifName)?.ip ?? null;
  }

  async release(key: AttachmentKey, hint?: string | null): Promise<string[]> {
    removeIfExists(this.tmpFor(key));
    const same = (o: AttachmentKey | null) => o !== null && o.containerId === key.containerId && o.ifName === key.ifName;
    if (hint && same(this.ownerOf(hint))) {
      removeIfExists(join(this.dir, hint));
      return [hint];
    }
    // No usable hint (no journal, or a crash before it was written): find it by owner.
    const released: string[] = [];
    for (const r of this.list()) {
      if (same(r)) {
        removeIfExists(join(this.dir, r.ip));
        released.push(r.ip);
      }
    }
    return released;
  }

  /** `graceMs`: spare reservations younger than this (an operator's GC may overlap an ADD;
   *  the runtime's GC never does). */
  async gc(valid: AttachmentKey[], graceMs = 0): Promise<string[]> {
    const keep = new Set(valid.map(keyString));
    const released: string[] = [];
    const young = (f: string) => graceMs > 0 && Date.now() - this.mtimeMs(f) < graceMs;
    for (const f of this.files()) {
      if ((f.startsWith('.reserving-') || f.includes('.tmp-')) && !young(f)) removeIfExists(join(this.dir, f));
    }
    for (const r of this.list()) {
      if (!keep.has(keyString(r)) && !young(r.ip)) {
        removeIfExists(join(this.dir, r.ip));
        released.push(r.ip);
      }
    }
    return released;
  }

  async peek(): Promise<Lease> {
    return peek(this.pool, this);
  }

  async status(): Promise<IpamStatus> {
    const used = this.list().length;
    const free = capacity(this.pool) - used;
    try {
      ensureDir(this.dir, 0o755);
      accessSync(this.dir, constants.W_OK);
    } catch (e) {
      return { ready: false, used, free, reason: `IPAM directory ${this.dir} is not writable: ${(e as Error).message}` };
    }
    if (free <= 0) return { ready: false, used, free: 0, reason: 'address pool exhausted' };
    return { ready: true, used, free };
  }
}
