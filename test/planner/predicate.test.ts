import { test } from 'node:test';
import assert from 'node:assert/strict';
import { holds, matches, negate, patternKeys } from '../../planner/predicate.ts';

const links = [{ ifname: 'lo', flags: ['LOOPBACK', 'UP'] }, { ifname: 'testcni0', flags: ['BROADCAST', 'UP'], master: undefined }];

test('object patterns match subsets, $some/$none quantify over arrays', () => {
  assert.ok(matches({ $some: { ifname: 'testcni0' } }, links));
  assert.ok(!matches({ $some: { ifname: 'eth9' } }, links));
  assert.ok(matches({ $none: { ifname: 'eth9' } }, links));
  assert.ok(matches({ $some: { ifname: 'lo', flags: { $some: 'UP' } } }, links));
  assert.ok(!matches({ $some: { ifname: 'lo', flags: { $some: 'DOWN' } } }, links));
  assert.ok(!matches({ ifname: 'lo' }, 'lo'), 'an object pattern needs an object');
  assert.ok(!matches({ $some: 'x' }, { not: 'an array' }));
});

test('holds: JSON predicates see a failed query as no data; text and exit predicates read the process', () => {
  const ok = { exitCode: 0, stdout: JSON.stringify(links), json: links };
  assert.ok(holds({ $some: { ifname: 'lo' } }, ok));
  assert.ok(!holds({ $some: { ifname: 'lo' } }, { exitCode: 1, stdout: '' }));
  assert.ok(holds({ $none: { ifname: 'lo' } }, { exitCode: 1, stdout: '' }));
  assert.ok(holds({ $text: '1' }, { exitCode: 0, stdout: '1\n' }));
  assert.ok(!holds({ $text: '1' }, { exitCode: 2, stdout: '1\n' }));
  assert.ok(holds({ $exit: 0 }, { exitCode: 0, stdout: '' }));
  assert.ok(!holds({ $exit: 0 }, { exitCode: 1, stdout: '' }));
  assert.ok(holds(negate({ $exit: 0 }), { exitCode: 1, stdout: '' }));
  assert.deepEqual(negate(negate({ $text: 'a' })), { $text: 'a' });
});

test('patternKeys lists the fields a pattern reads', () => {
  assert.deepEqual([...patternKeys({ $some: { ifname: 'a', flags: { $some: 'UP' } } })].sort(), ['flags', 'ifname']);
});
