// The agent's view of the node registry, with a grace period for nodes that leave: their routes
// stay for `graceMs` after the registration disappears. A lease can lapse without the node
// going anywhere (etcd frozen or restarted for longer than the TTL expires every lease at once);
// the node registers again within about a second, and its pods must not lose their routes
// meanwhile. A node that really left loses its routes once the grace is over.
import type { NodeRecord } from '../model/node.ts';
import type { NodeEvent } from './datastore/etcd-store.ts';

export class Membership {
  private nodes = new Map<string, NodeRecord>();
  private leaving = new Map<string, { node: NodeRecord; until: number }>();
  /** etcd revision of the newest registry state held */
  private revision = 0;

  constructor(
    private readonly graceMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  private depart(node: NodeRecord): void {
    if (this.graceMs > 0) this.leaving.set(node.name, { node, until: this.now() + this.graceMs });
  }

  /** A watch event; false when it is older than what is held (a listing already had it). */
  apply(e: NodeEvent): boolean {
    if (e.revision <= this.revision) return false;
    this.revision = e.revision;
    if (e.type === 'put') {
      this.nodes.set(e.node.name, e.node);
      this.leaving.delete(e.node.name);
    } else {
      const gone = this.nodes.get(e.name);
      this.nodes.delete(e.name);
      if (gone) this.depart(gone);
    }
    return true;
  }

  /** A full listing, unless the watch has already brought a newer state. */
  applyListing(listing: { nodes: NodeRecord[]; revision: number }): boolean {
    if (listing.revision < this.revision) return false;
    const next = new Map(listing.nodes.map((n) => [n.name, n]));
    for (const [name, node] of this.nodes) if (!next.has(name)) this.depart(node);
    for (const name of next.keys()) this.leaving.delete(name);
    this.nodes = next;
    this.revision = listing.revision;
    return true;
  }

  /** Registered nodes. */
  registered(): NodeRecord[] {
    return [...this.nodes.values()];
  }

  /** Nodes to route to: the registered ones and those still within their grace. */
  routable(): NodeRecord[] {
    const t = this.now();
    for (const [name, l] of this.leaving) if (l.until <= t) this.leaving.delete(name);
    return [...this.nodes.values(), ...[...this.leaving.values()].map((l) => l.node)];
  }

  /** Milliseconds until the next departure's grace ends, or null when none is pending. */
  nextExpiry(): number | null {
    const ends = [...this.leaving.values()].map((l) => l.until - this.now());
    return ends.length ? Math.max(0, Math.min(...ends)) : null;
  }

  leavingNames(): string[] {
    return [...this.leaving.keys()].sort();
  }
}
