// The node-level planner: registry -> desired routes -> steps against the kernel's routes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeRecord } from '../../model/node.ts';
import { desiredRoutes, routeSteps, parseRoutes, type NodeRoute } from '../../planner/node-routes.ts';
import type { NodeFacts, Step } from '../../model/plan.ts';
import { argvOf } from '../../model/plan.ts';

const FACTS: NodeFacts = {
  tools: { ip: '/usr/sbin/ip', nsenter: '/usr/bin/nsenter', sysctl: '/usr/sbin/sysctl', iptables: '/usr/sbin/iptables' },
  hostPid: 4242,
  uplink: 'eth0',
  uplinkMtu: 1500,
};
const PROTO = 151;

const node = (i: number, extra: Partial<NodeRecord> = {}): NodeRecord => ({
  name: `n${i}`,
  underlayIp: `198.18.0.${10 + i}`,
  block: `10.244.${i}.0/24`,
  ...extra,
});

/** Every ordering of a small list (for "whatever order the registry lists them in"). */
function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

/** A seeded shuffle: reproducible, no Math.random. */
function shuffled<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const verbOf = (s: Step) => argvOf(s)[2];
const byId = (steps: Step[]) => new Map(steps.map((s) => [s.id, s]));

// ---- desiredRoutes ----

test('desiredRoutes: a route to every other node block via its underlay address, none to itself', () => {
  const nodes = [node(1), node(2), node(3)];
  assert.deepEqual(desiredRoutes('n2', nodes), [
    { dst: '10.244.1.0/24', via: '198.18.0.11' },
    { dst: '10.244.3.0/24', via: '198.18.0.13' },
  ]);
  assert.deepEqual(desiredRoutes('n9', nodes).length, 3, 'a node not in the registry yet routes to all of them');
  assert.deepEqual(desiredRoutes('n1', [node(1)]), [], 'alone in the cluster: nothing');
  assert.deepEqual(desiredRoutes('n1', []), []);
});

test('desiredRoutes: nodes without a block or an underlay address (still joining) get no route', () => {
  const nodes = [node(1), node(2, { block: '' }), node(3, { underlayIp: '' }), node(4)];
  assert.deepEqual(desiredRoutes('n1', nodes), [{ dst: '10.244.4.0/24', via: '198.18.0.14' }]);
});

test('desiredRoutes: malformed records from the datastore are skipped, not turned into commands', () => {
  const bad = [
    node(2, { block: '10.244.2.7/24' }), // host bits set: the kernel refuses it
    node(3, { block: 'not-a-cidr' }),
    node(4, { underlayIp: '198.18.0.300' }),
    node(5, { underlayIp: '198.18.0.15 #' }), // would break an ip -batch line
    { name: 'n6', underlayIp: 42, block: null } as unknown as NodeRecord,
  ];
  assert.deepEqual(desiredRoutes('n1', [node(1), ...bad, node(7)]), [{ dst: '10.244.7.0/24', via: '198.18.0.17' }]);
});

test('desiredRoutes: the same routes in the same order whatever order the registry lists them in', () => {
  const nodes = [node(1), node(2), node(10), node(3), node(20)];
  const expected = desiredRoutes('n1', nodes);
  assert.deepEqual(expected.map((r) => r.dst), ['10.244.10.0/24', '10.244.2.0/24', '10.244.20.0/24', '10.244.3.0/24']);
  for (const p of permutations(nodes)) assert.deepEqual(desiredRoutes('n1', p), expected);
  const many = Array.from({ length: 300 }, (_, i) => ({ name: `m${i}`, underlayIp: `198.18.${1 + Math.floor(i / 200)}.${i % 200}`, block: `10.${100 + Math.floor(i / 250)}.${i % 250}.0/24` }));
  const first = desiredRoutes('m0', many);
  assert.equal(first.length, 299);
  for (let seed = 1; seed <= 20; seed++) assert.deepEqual(desiredRoutes('m0', shuffled(many, seed)), first);
});

test('desiredRoutes: one block in two records yields one route, chosen independently of order', () => {
  const a = node(2, { name: 'a', underlayIp: '198.18.0.20' });
  const b = node(2, { name: 'b', underlayIp: '198.18.0.30' });
  const routes = desiredRoutes('n1', [node(3), a, b]);
  assert.deepEqual(routes, [
    { dst: '10.244.2.0/24', via: '198.18.0.20' },
    { dst: '10.244.3.0/24', via: '198.18.0.13' },
  ]);
  for (const p of permutations([node(3), a, b])) assert.deepEqual(desiredRoutes('n1', p), routes);
  // and so the steps do not flap: once that route is in place, nothing more to do
  assert.deepEqual(routeSteps(routes, routes, FACTS, PROTO), []);
});

// ---- routeSteps ----

test('routeSteps: a new route is added (not replaced), tagged with our protocol, probed in the node netns', () => {
  const steps = routeSteps([{ dst: '10.244.2.0/24', via: '198.18.0.12' }], [], FACTS, PROTO);
  assert.equal(steps.length, 1);
  const s = steps[0]!;
  assert.equal(s.id, 'route:host:10.244.2.0/24');
  assert.deepEqual(argvOf(s), ['/usr/sbin/ip', 'route', 'add', '10.244.2.0/24', 'via', '198.18.0.12', 'proto', '151']);
  assert.equal(s.ns, 'host');
  assert.equal(s.scope, 'node');
  assert.equal(s.idempotent, false, 'add fails on a route somebody else owns: it must not count as harmless to repeat');
  assert.deepEqual(s.probe, {
    ns: 'host',
    mech: 'exec',
    argv: ['/usr/sbin/ip', '-j', 'route', 'show', 'proto', '151'],
    expect: { $some: { dst: '10.244.2.0/24', gateway: '198.18.0.12' } },
  });
  assert.equal(argvOf(routeSteps([{ dst: '10.244.2.0/24', via: '198.18.0.12' }], [], FACTS, 201)[0]!).at(-1), '201');
});

test('routeSteps: ours pointing elsewhere is replaced; ours no longer wanted is deleted; unchanged is left', () => {
  const desired: NodeRoute[] = [
    { dst: '10.244.1.0/24', via: '198.18.0.11' }, // unchanged
    { dst: '10.244.2.0/24', via: '198.18.0.99' }, // node 2 moved to a new underlay address
    { dst: '10.244.4.0/24', via: '198.18.0.14' }, // new node
  ];
  const observed: NodeRoute[] = [
    { dst: '10.244.1.0/24', via: '198.18.0.11' },
    { dst: '10.244.2.0/24', via: '198.18.0.12' },
    { dst: '10.244.3.0/24', via: '198.18.0.13' }, // node 3 left
  ];
  const steps = routeSteps(desired, observed, FACTS, PROTO);
  const ids = steps.map((s) => s.id);
  assert.deepEqual(ids, ['route.del:host:10.244.3.0/24', 'route:host:10.244.2.0/24', 'route:host:10.244.4.0/24']);
  const m = byId(steps);
  assert.deepEqual(argvOf(m.get('route:host:10.244.2.0/24')!), ['/usr/sbin/ip', 'route', 'replace', '10.244.2.0/24', 'via', '198.18.0.99', 'proto', '151']);
  assert.equal(m.get('route:host:10.244.2.0/24')!.idempotent, true);
  assert.match(m.get('route:host:10.244.2.0/24')!.describe, /was via 198\.18\.0\.12/);
  assert.deepEqual(argvOf(m.get('route.del:host:10.244.3.0/24')!), ['/usr/sbin/ip', 'route', 'del', '10.244.3.0/24', 'via', '198.18.0.13', 'proto', '151']);
  assert.deepEqual(m.get('route.del:host:10.244.3.0/24')!.probe!.expect, { $none: { dst: '10.244.3.0/24' } });
  assert.equal(verbOf(m.get('route:host:10.244.4.0/24')!), 'add');
  assert.ok(!ids.some((id) => id.includes('10.244.1.0/24')), 'an unchanged route produces no step');
});

test('routeSteps: desired == observed -> nothing to do', () => {
  const routes = desiredRoutes('n1', [node(1), node(2), node(3)]);
  assert.deepEqual(routeSteps(routes, routes, FACTS, PROTO), []);
  assert.deepEqual(routeSteps([], [], FACTS, PROTO), []);
});

test('routeSteps: never a replace or del for a destination not observed as ours', () => {
  // Whatever the registry says, `replace` and `del` only ever name routes in `observed` (the
  // kernel's routes with our protocol number); anything else is an `add`, which fails rather
  // than overwrite a route somebody else owns.
  for (let seed = 1; seed <= 200; seed++) {
    const pick = (k: number) => shuffled(Array.from({ length: 12 }, (_, i) => i), seed * 7 + k).slice(0, (seed + k) % 9);
    const desired = pick(1).map((i) => ({ dst: `10.244.${i}.0/24`, via: `198.18.0.${10 + ((i + seed) % 3)}` }));
    const observed = pick(2).map((i) => ({ dst: `10.244.${i}.0/24`, via: `198.18.0.${10 + (i % 3)}` }));
    const ours = new Map(observed.map((r) => [r.dst, r.via]));
    const wanted = new Map(desired.map((r) => [r.dst, r.via]));
    const steps = routeSteps(desired, observed, FACTS, PROTO);
    for (const s of steps) {
      const [, , verb, dst, , via] = argvOf(s);
      if (verb === 'add') assert.ok(!ours.has(dst!) && wanted.get(dst!) === via, `seed ${seed}: ${argvOf(s).join(' ')}`);
      else if (verb === 'replace') assert.ok(ours.has(dst!) && ours.get(dst!) !== via && wanted.get(dst!) === via, `seed ${seed}: ${argvOf(s).join(' ')}`);
      else if (verb === 'del') assert.ok(ours.get(dst!) === via && !wanted.has(dst!), `seed ${seed}: ${argvOf(s).join(' ')}`);
      else assert.fail(`unexpected verb ${verb}`);
      assert.deepEqual(argvOf(s).slice(-2), ['proto', '151']);
    }
    // and the steps are exactly the difference
    const changed = desired.filter((r) => ours.get(r.dst) !== r.via).length + observed.filter((r) => !wanted.has(r.dst)).length;
    assert.equal(steps.length, changed, `seed ${seed}`);
    assert.equal(new Set(steps.map((s) => s.id)).size, steps.length, 'ids are unique');
  }
});

test('routeSteps: ids are stable and the order is independent of input order', () => {
  const desired = desiredRoutes('n1', [node(1), node(2), node(3), node(5)]);
  const observed: NodeRoute[] = [
    { dst: '10.244.4.0/24', via: '198.18.0.14' },
    { dst: '10.244.3.0/24', via: '198.18.0.50' },
    { dst: '10.244.6.0/24', via: '198.18.0.16' },
  ];
  const a = routeSteps(desired, observed, FACTS, PROTO);
  const ids = a.map((s) => s.id);
  assert.deepEqual(ids, [
    'route.del:host:10.244.4.0/24',
    'route.del:host:10.244.6.0/24',
    'route:host:10.244.2.0/24',
    'route:host:10.244.3.0/24',
    'route:host:10.244.5.0/24',
  ]);
  for (const d of permutations(desired)) {
    for (const o of permutations(observed)) assert.deepEqual(routeSteps(d, o, FACTS, PROTO), a);
  }
  // the id names the destination only: a route whose next hop changes keeps its id
  const moved = routeSteps([{ dst: '10.244.2.0/24', via: '198.18.0.77' }], [], FACTS, PROTO);
  assert.equal(moved[0]!.id, 'route:host:10.244.2.0/24');
  // plain data: serialisable and the same twice
  assert.deepEqual(JSON.parse(JSON.stringify(a)), a);
});

// ---- parseRoutes ----

test('parseRoutes: reads ip -j route output; a host route gets /32', () => {
  const json = [
    { dst: '10.244.2.0/24', gateway: '198.18.0.12', dev: 'eth0', protocol: '151', flags: [] },
    { dst: '10.244.9.9', gateway: '198.18.0.19', dev: 'eth0', protocol: '151', flags: [] },
  ];
  assert.deepEqual(parseRoutes(json), [
    { dst: '10.244.2.0/24', via: '198.18.0.12' },
    { dst: '10.244.9.9/32', via: '198.18.0.19' },
  ]);
});

test('parseRoutes: routes this planner cannot have made are ignored, so never deleted', () => {
  const json = [
    { dst: 'default', gateway: '198.18.0.1', dev: 'eth0', protocol: '151' },
    { dst: '10.244.3.0/24', dev: 'eth0', protocol: '151', scope: 'link' }, // no gateway
    { type: 'blackhole', dst: '10.244.4.0/24', protocol: '151' },
    { dst: '10.244.5.0/24', nexthops: [{ gateway: '198.18.0.15' }, { gateway: '198.18.0.16' }] },
    { dst: 'fd00::/64', gateway: 'fe80::1' },
    null,
    'junk',
    { dst: '10.244.6.0/24', gateway: '198.18.0.16' },
  ];
  const routes = parseRoutes(json);
  assert.deepEqual(routes, [{ dst: '10.244.6.0/24', via: '198.18.0.16' }]);
  assert.deepEqual(routeSteps([], routes, FACTS, PROTO).map((s) => argvOf(s)[3]), ['10.244.6.0/24']);
});

test('routeSteps: a host route is probed the way the kernel prints it (no /32)', () => {
  const [del] = routeSteps([], parseRoutes([{ dst: '10.244.9.9', gateway: '198.18.0.19' }]), FACTS, PROTO);
  assert.deepEqual(argvOf(del!).slice(2, 4), ['del', '10.244.9.9/32']);
  assert.deepEqual(del!.probe!.expect, { $none: { dst: '10.244.9.9' } });
  const [add] = routeSteps([{ dst: '10.244.9.9/32', via: '198.18.0.19' }], [], FACTS, PROTO);
  assert.deepEqual(add!.probe!.expect, { $some: { dst: '10.244.9.9', gateway: '198.18.0.19' } });
});

test('parseRoutes: anything that is not a list reads as no routes', () => {
  for (const v of [null, undefined, {}, 'x', 1]) assert.deepEqual(parseRoutes(v), []);
  assert.deepEqual(parseRoutes([]), []);
});
