// The agent's view of etcd: node registration under a lease, block affinity and per-address
// reservations, each written with a create-if-absent transaction (never read-then-write).
// Only the agent links etcd3: the CNI plugin never holds datastore credentials.
import { readFileSync } from 'node:fs';
import { Etcd3, type Lease, type IOptions, type Watcher } from 'etcd3';
import { noop } from 'cockatiel';
import { Keys, type IpRecord } from './keys.ts';
import type { NodeRecord } from '../../model/node.ts';
import type { AttachmentKey } from '../../model/lease.ts';
import { parseCidr, nthBlock, formatCidr, size } from '../../lib/ipv4.ts';

export interface EtcdSettings {
  endpoints: string[];
  caFile: string | null;
  certFile: string | null;
  keyFile: string | null;
  prefix: string;
  dialTimeoutMs: number;
  requestTimeoutMs: number;
}

export class DatastoreUnavailable extends Error {}
export class BlocksExhausted extends Error {}

/** Fails a datastore call that takes longer than `ms` instead of waiting on a dead cluster. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DatastoreUnavailable(`etcd: ${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } catch (e) {
    if (e instanceof DatastoreUnavailable) throw e;
    throw new DatastoreUnavailable(`etcd: ${what}: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

/** A registry change and the etcd revision it happened at. */
export type NodeEvent = ({ type: 'put'; node: NodeRecord } | { type: 'delete'; name: string }) & { revision: number };

export class EtcdStore {
  readonly keys: Keys;
  private readonly client: Etcd3;
  private lease: Lease | null = null;

  constructor(private readonly s: EtcdSettings) {
    this.keys = new Keys(s.prefix);
    const options: IOptions = {
      hosts: s.endpoints,
      dialTimeout: s.dialTimeoutMs,
      // Our callers time out and report; etcd3's own retries would only hold ADDs up.
      faultHandling: { host: () => noop, global: noop },
    };
    if (s.caFile) {
      options.credentials = {
        rootCertificate: readFileSync(s.caFile),
        ...(s.certFile ? { certChain: readFileSync(s.certFile) } : {}),
        ...(s.keyFile ? { privateKey: readFileSync(s.keyFile) } : {}),
      };
    }
    this.client = new Etcd3(options);
  }

  private t<T>(p: Promise<T>, what: string): Promise<T> {
    return withTimeout(p, this.s.requestTimeoutMs, what);
  }

  /** A cheap round trip: is the cluster answering? */
  async ping(): Promise<void> {
    await this.t(this.client.get(`${this.s.prefix}/ping`).string(), 'ping');
  }

  // --- node registry -------------------------------------------------------------------------

  /** Publishes the node under a lease kept alive in the background; `onLost` when it lapses. */
  async register(node: NodeRecord, ttlSeconds: number, onLost: (err: Error) => void): Promise<void> {
    this.lease?.release();
    const lease = this.client.lease(ttlSeconds, { autoKeepAlive: true });
    lease.on('lost', (err: Error) => {
      if (this.lease === lease) onLost(err);
    });
    this.lease = lease;
    await this.t(lease.put(this.keys.node(node.name)).value(JSON.stringify(node)).exec(), 'register node');
  }

  async listNodes(): Promise<NodeRecord[]> {
    return (await this.nodesAt()).nodes;
  }

  /** The registry and the etcd revision it was read at: a watch from revision + 1 then misses
   *  no change made after the listing. */
  async nodesAt(): Promise<{ nodes: NodeRecord[]; revision: number }> {
    const res = await this.t(this.client.getAll().prefix(this.keys.nodes()).exec(), 'list nodes');
    const nodes = res.kvs
      .map((kv) => safeJson<NodeRecord>(kv.value.toString()))
      .filter((n): n is NodeRecord => n !== null && typeof n.name === 'string');
    return { nodes, revision: Number(res.header.revision) };
  }

  async watchNodes(onEvent: (e: NodeEvent) => void, onState: (connected: boolean) => void, fromRevision?: number): Promise<Watcher> {
    const builder = this.client.watch().prefix(this.keys.nodes());
    if (fromRevision !== undefined) builder.startRevision(String(fromRevision));
    const w = await this.t(builder.create(), 'watch nodes');
    w.on('put', (kv) => {
      const node = safeJson<NodeRecord>(kv.value.toString());
      if (node) onEvent({ type: 'put', node, revision: Number(kv.mod_revision) });
    });
    w.on('delete', (kv) => onEvent({ type: 'delete', name: kv.key.toString().slice(this.keys.nodes().length), revision: Number(kv.mod_revision) }));
    w.on('disconnected', () => onState(false));
    w.on('connected', () => onState(true));
    w.on('error', () => onState(false));
    return w;
  }

  // --- blocks ----------------------------------------------------------------------------------

  /** The node's block: the one it already owns (restart), else the first free one, claimed
   *  with create-if-absent so two nodes can never own the same block. */
  async claimBlock(node: string, subnet: string, blockSize: number): Promise<string> {
    const net = parseCidr(subnet)!;
    const owned = await this.t(this.client.getAll().prefix(this.keys.blocks()).strings(), 'list blocks');
    const taken = new Set<string>();
    for (const [key, value] of Object.entries(owned)) {
      const cidr = this.keys.blockCidr(key);
      if (safeJson<{ node: string }>(value)?.node === node) return cidr;
      taken.add(cidr);
    }
    const count = size(net) / 2 ** (32 - blockSize);
    for (let i = 0; i < count; i++) {
      const cidr = formatCidr(nthBlock(net, blockSize, i)!);
      if (taken.has(cidr)) continue;
      const key = this.keys.block(cidr);
      const r = await this.t(
        this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(JSON.stringify({ node }))).commit(),
        'claim block',
      );
      if (r.succeeded) return cidr;
    }
    throw new BlocksExhausted(`every /${blockSize} block of ${subnet} is owned by a node`);
  }

  // --- reservations ------------------------------------------------------------------------------

  /** Loads the addresses already reserved in a block (at start, and after a conflict). */
  async reservedIn(isInBlock: (ip: string) => boolean): Promise<Map<string, IpRecord>> {
    const all = await this.t(this.client.getAll().prefix(this.keys.ips()).strings(), 'list reservations');
    const out = new Map<string, IpRecord>();
    for (const [key, value] of Object.entries(all)) {
      const ip = key.slice(this.keys.ips().length);
      const rec = safeJson<IpRecord>(value);
      if (rec && isInBlock(ip)) out.set(ip, rec);
    }
    return out;
  }

  /**
   * Creates the reservation of `ip` and the attachment's handle in one transaction, only if
   * neither exists. Returns "ok", "taken" (the address is somebody else's) or the address the
   * attachment already holds.
   */
  async reserve(ip: string, rec: IpRecord): Promise<'ok' | 'taken' | { existing: string }> {
    const ipKey = this.keys.ip(ip);
    const handleKey = this.keys.handle(rec);
    const r = await this.t(
      this.client
        .if(ipKey, 'Create', '==', 0)
        .and(handleKey, 'Create', '==', 0)
        .then(this.client.put(ipKey).value(JSON.stringify(rec)), this.client.put(handleKey).value(ip))
        .else(this.client.get(handleKey))
        .commit(),
      'reserve address',
    );
    if (r.succeeded) return 'ok';
    const kvs = r.responses[0]?.response_range?.kvs ?? [];
    return kvs.length > 0 ? { existing: kvs[0]!.value.toString() } : 'taken';
  }

  /**
   * Several reservations in one transaction (group commit): all are created, or none when any
   * address or handle exists already. The caller then falls back to reserve() one by one.
   */
  async reserveMany(items: { ip: string; rec: IpRecord }[]): Promise<boolean> {
    const [first, ...rest] = items;
    if (!first) return true;
    let txn = this.client.if(this.keys.ip(first.ip), 'Create', '==', 0).and(this.keys.handle(first.rec), 'Create', '==', 0);
    for (const it of rest) txn = txn.and(this.keys.ip(it.ip), 'Create', '==', 0).and(this.keys.handle(it.rec), 'Create', '==', 0);
    const puts = items.flatMap((it) => [
      this.client.put(this.keys.ip(it.ip)).value(JSON.stringify(it.rec)),
      this.client.put(this.keys.handle(it.rec)).value(it.ip),
    ]);
    const r = await this.t(txn.then(...puts).commit(), 'reserve addresses');
    return r.succeeded;
  }

  async handleOf(k: AttachmentKey): Promise<string | null> {
    return this.t(this.client.get(this.keys.handle(k)).string(), 'read handle');
  }

  /** Deletes the attachment's handle and reservation, if the handle still names `ip`. */
  async unreserve(k: AttachmentKey, ip: string): Promise<boolean> {
    const handleKey = this.keys.handle(k);
    const r = await this.t(
      this.client
        .if(handleKey, 'Value', '==', ip)
        .then(this.client.delete().key(handleKey), this.client.delete().key(this.keys.ip(ip)))
        .commit(),
      'release address',
    );
    return r.succeeded;
  }

  /** Deletes a reservation left without a handle (a crash between two writes never happens:
   *  both are in one transaction; this is for records written by hand or older versions). */
  async deleteIfUnchanged(ip: string, value: string): Promise<boolean> {
    const key = this.keys.ip(ip);
    const r = await this.t(this.client.if(key, 'Value', '==', value).then(this.client.delete().key(key)).commit(), 'delete reservation');
    return r.succeeded;
  }

  close(): void {
    this.lease?.release();
    this.lease = null;
    this.client.close();
  }
}

function safeJson<T>(text: string): T | null {
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}
