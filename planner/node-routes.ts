// Routes to other nodes' blocks (pure): from the cluster's node registry to the kernel routes
// this node should hold, and from desired vs observed to the steps that converge them.
import { HOST, type NodeFacts, type Step, type Probe } from '../model/plan.ts';
import type { NodeRecord } from '../model/node.ts';
import { parseCidr, parseIp, formatCidr } from '../lib/ipv4.ts';
import { shownDst } from './steps.ts';

export interface NodeRoute {
  dst: string;
  via: string;
}

/** host-gw: a route to every other node's block through that node's underlay address. */
export function desiredRoutes(self: string, nodes: NodeRecord[]): NodeRoute[] {
  const routes = nodes
    // Records come from the datastore: one that is not well-formed (joining, or written by hand)
    // gets no route rather than a command the kernel or `ip -batch` would refuse on every run.
    .filter((n) => n.name !== self && isBlock(n.block) && isAddress(n.underlayIp))
    .map((n) => ({ dst: n.block, via: n.underlayIp }))
    .sort((a, b) => compare(a.dst, b.dst) || compare(a.via, b.via));
  // A block in two records (only by hand: blocks are claimed create-if-absent) gets one route,
  // the same one whatever order the registry was listed in, so runs do not flap between them.
  return routes.filter((r, i) => i === 0 || routes[i - 1]!.dst !== r.dst);
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function isBlock(v: unknown): v is string {
  const c = typeof v === 'string' ? parseCidr(v, true) : null;
  return c !== null && formatCidr(c) === v;
}

function isAddress(v: unknown): v is string {
  return typeof v === 'string' && parseIp(v) !== null;
}

/**
 * Steps that turn `observed` (routes carrying our protocol number) into `desired`. New routes
 * are added, not replaced, so a route somebody else owns is never overwritten: that add fails
 * and is reported. Ours that point elsewhere are replaced; ours no longer wanted are deleted.
 */
export function routeSteps(desired: NodeRoute[], observed: NodeRoute[], facts: NodeFacts, proto: number): Step[] {
  const ip = facts.tools.ip;
  const have = new Map(observed.map((r) => [r.dst, r.via]));
  const want = new Set(desired.map((r) => r.dst));
  const probe = (r: NodeRoute): Probe => ({
    ns: HOST,
    mech: 'exec',
    argv: [ip, '-j', 'route', 'show', 'proto', String(proto)],
    expect: { $some: { dst: shownDst(r.dst), gateway: r.via } },
  });
  const steps: Step[] = [];
  for (const r of desired) {
    const current = have.get(r.dst);
    if (current === r.via) continue;
    steps.push({
      id: `route:host:${r.dst}`,
      kind: 'route.add',
      scope: 'node',
      ns: HOST,
      mech: 'ip',
      argv: [ip, 'route', current === undefined ? 'add' : 'replace', r.dst, 'via', r.via, 'proto', String(proto)],
      idempotent: current !== undefined,
      undo: null,
      undoReason: 'node routes follow the registry, not pods',
      probe: probe(r),
      describe: `${current === undefined ? 'route' : `re-route (was via ${current})`} ${r.dst} via ${r.via}`,
    });
  }
  for (const r of observed) {
    if (want.has(r.dst)) continue;
    steps.push({
      id: `route.del:host:${r.dst}`,
      kind: 'route.del',
      scope: 'node',
      ns: HOST,
      mech: 'ip',
      argv: [ip, 'route', 'del', r.dst, 'via', r.via, 'proto', String(proto)],
      idempotent: false,
      undo: null,
      undoReason: 'node routes follow the registry, not pods',
      probe: { ...probe(r), expect: { $none: { dst: shownDst(r.dst) } } },
      describe: `remove route ${r.dst} via ${r.via} (its node left)`,
    });
  }
  return steps.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** The query whose output parseRoutes reads. */
export function ownRoutesQuery(facts: NodeFacts, proto: number): Probe {
  return { ns: HOST, mech: 'exec', argv: [facts.tools.ip, '-j', 'route', 'show', 'proto', String(proto)], expect: { $exit: 0 } };
}

/** Reads `ip -j route show proto N` output back into routes. Only routes this planner could
 *  have made count (an IPv4 destination via a gateway): a default route, a multipath or a
 *  blackhole route that happens to carry our number is never touched. */
export function parseRoutes(json: unknown): NodeRoute[] {
  if (!Array.isArray(json)) return [];
  return json
    .filter((r): r is { dst: string; gateway: string } => typeof r?.dst === 'string' && typeof r?.gateway === 'string')
    .map((r) => ({ dst: r.dst.includes('/') ? r.dst : `${r.dst}/32`, via: r.gateway }))
    .filter((r) => isBlock(r.dst) && isAddress(r.via));
}
