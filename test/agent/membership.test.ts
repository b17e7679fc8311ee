import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Membership } from '../../agent/membership.ts';

const n = (name: string, i: number) => ({ name, underlayIp: `198.18.0.${10 + i}`, block: `10.244.${i}.0/24` });

function clock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test('a node whose registration disappears stays routable for the grace, then goes', () => {
  const c = clock();
  const m = new Membership(3000, c.now);
  m.applyListing({ nodes: [n('a', 1), n('b', 2)], revision: 10 });
  assert.ok(m.apply({ type: 'delete', name: 'b', revision: 11 }));
  assert.deepEqual(m.registered().map((x) => x.name), ['a']);
  assert.deepEqual(m.routable().map((x) => x.name), ['a', 'b']);
  assert.deepEqual(m.leavingNames(), ['b']);
  assert.equal(m.nextExpiry(), 3000);
  c.advance(2999);
  assert.deepEqual(m.routable().map((x) => x.name), ['a', 'b']);
  c.advance(1);
  assert.deepEqual(m.routable().map((x) => x.name), ['a']);
  assert.equal(m.nextExpiry(), null);
});

test('registering again within the grace cancels the departure', () => {
  const c = clock();
  const m = new Membership(3000, c.now);
  m.applyListing({ nodes: [n('a', 1), n('b', 2)], revision: 10 });
  m.apply({ type: 'delete', name: 'b', revision: 11 });
  m.apply({ type: 'put', node: n('b', 2), revision: 12 });
  c.advance(5000);
  assert.deepEqual(m.routable().map((x) => x.name), ['a', 'b']);
  assert.deepEqual(m.leavingNames(), []);
});

test('a node missing from a newer listing departs too; older events and listings are ignored', () => {
  const c = clock();
  const m = new Membership(3000, c.now);
  m.applyListing({ nodes: [n('a', 1), n('b', 2)], revision: 10 });
  assert.equal(m.apply({ type: 'put', node: n('c', 3), revision: 9 }), false, 'older than the listing');
  assert.equal(m.applyListing({ nodes: [n('a', 1)], revision: 8 }), false, 'an older listing');
  assert.ok(m.applyListing({ nodes: [n('a', 1)], revision: 20 }));
  assert.deepEqual(m.routable().map((x) => x.name), ['a', 'b']);
  c.advance(3000);
  assert.deepEqual(m.routable().map((x) => x.name), ['a']);
});

test('grace 0 removes at once', () => {
  const m = new Membership(0);
  m.applyListing({ nodes: [n('a', 1), n('b', 2)], revision: 10 });
  m.apply({ type: 'delete', name: 'b', revision: 11 });
  assert.deepEqual(m.routable().map((x) => x.name), ['a']);
  assert.equal(m.nextExpiry(), null);
});
