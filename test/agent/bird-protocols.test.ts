// The birdc status reader on output captured from BIRD 2.0.12 (fixtures/birdc/): sessions
// Established, Active with an error, disabled; an external peer; BIRD's own time format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseProtocols, bgpSessions, parseSince, parseRouteCounts } from '../../agent/bird/protocols.ts';
import { ROOT } from '../helpers/netns.ts';

const captured = (name: string) => readFileSync(join(ROOT, 'fixtures', 'birdc', name), 'utf8');

test('every protocol of a captured `show protocols all`, with its channels', () => {
  const ps = parseProtocols(captured('mixed-states.txt'));
  assert.deepEqual(ps.map((p) => [p.name, p.proto, p.table, p.state]), [
    ['device1', 'Device', '---', 'up'],
    ['underlay', 'Direct', '---', 'up'],
    ['blocks', 'Static', 'master4', 'up'],
    ['kernel4', 'Kernel', 'master4', 'up'],
    ['node_198_18_0_12', 'BGP', '---', 'up'],
    ['node_198_18_0_13', 'BGP', '---', 'start'],
    ['peer_198_18_0_30', 'BGP', '---', 'up'],
  ]);
  const kernel = ps.find((p) => p.name === 'kernel4')!;
  assert.equal(kernel.channels.ipv4!['Output filter'], 'kernel_export');
  assert.deepEqual(parseRouteCounts(kernel.channels.ipv4!['Routes']), { imported: 0, filtered: 0, exported: 1, preferred: 0 });
  const active = ps.find((p) => p.name === 'node_198_18_0_13')!;
  assert.equal(active.info, 'Active        Socket: Connection refused');
  assert.equal(active.details['Description'], 'node n3');
});

test('BGP sessions: peer, state, since, last error and routes in and out', () => {
  const s = bgpSessions(parseProtocols(captured('mixed-states.txt')));
  assert.deepEqual(s, [
    {
      name: 'node_198_18_0_12', peer: '198.18.0.12', peerAs: 64512, localAs: 64512, state: 'Established', established: true,
      since: '2026-12-03T09:25:41+0000', sinceMs: Date.UTC(2026, 11, 3, 9, 25, 41), lastError: null,
      routes: { imported: 1, filtered: 0, exported: 1, preferred: 1 },
    },
    {
      name: 'node_198_18_0_13', peer: '198.18.0.13', peerAs: 64512, localAs: 64512, state: 'Active', established: false,
      since: '2026-12-03T09:25:40+0000', sinceMs: Date.UTC(2026, 11, 3, 9, 25, 40), lastError: 'Socket: Connection refused',
      routes: { imported: 0, filtered: 0, exported: 0, preferred: 0 },
    },
    {
      name: 'peer_198_18_0_30', peer: '198.18.0.30', peerAs: 65001, localAs: 64512, state: 'Established', established: true,
      since: '2026-12-03T09:25:41+0000', sinceMs: Date.UTC(2026, 11, 3, 9, 25, 41), lastError: null,
      routes: { imported: 0, filtered: 0, exported: 1, preferred: 0 },
    },
  ]);
});

test('a peer that went away and a disabled session', () => {
  const s = bgpSessions(parseProtocols(captured('peer-shut-down.txt')));
  assert.deepEqual(s.map((x) => [x.name, x.state, x.established, x.lastError]), [
    ['node_198_18_0_12', 'Active', false, 'Socket: Connection refused'],
    ['node_198_18_0_13', 'Down', false, null],
    ['peer_198_18_0_30', 'Established', true, null],
  ]);
});

test("BIRD's own time format is read, without an epoch time", () => {
  const [s] = bgpSessions(parseProtocols(captured('default-timeformat.txt')));
  assert.deepEqual([s!.name, s!.state, s!.since, s!.sinceMs, s!.peer], ['node_198_18_0_12', 'Active', '09:25:48.665', null, '198.18.0.12']);
});

test('odd input gives no sessions rather than an exception', () => {
  assert.deepEqual(parseProtocols(''), []);
  assert.deepEqual(parseProtocols('Unable to connect to server control socket (/x): No such file or directory\n'), []);
  assert.deepEqual(parseProtocols('BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\n'), []);
  assert.equal(parseSince('2026-13-45T99:99:99+0000'), null);
  assert.equal(parseSince('2026-12-03T10:00:00+0100'), Date.UTC(2026, 11, 3, 9, 0, 0));
  assert.deepEqual(parseRouteCounts('3 imported, 2 filtered, 1 exported, 0 preferred'), { imported: 3, filtered: 2, exported: 1, preferred: 0 });
});
