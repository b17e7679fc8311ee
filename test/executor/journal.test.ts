import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, appendFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { JournalStore, newJournal, undoCandidates, attachmentOfFile } from '../../executor/journal.ts';
import type { Plan } from '../../model/plan.ts';

const plan: Plan = {
  command: 'ADD', network: 'net', containerId: 'c-1.x', ifName: 'eth0', netns: '/run/netns/p', mode: 'host-gw', inputsDigest: 'd', result: null,
  steps: ['a', 'b', 'c'].map((id) => ({ id, kind: 'link.add', scope: 'pod', ns: 'host', mech: 'exec', argv: ['/bin/true'], idempotent: false, undo: { ns: 'host', mech: 'exec', argv: ['/bin/true'] }, probe: null, describe: id })),
};

function store(t: { after: (fn: () => void) => void }): JournalStore {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-journal-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return new JournalStore(dir, () => new Date('2026-01-02T03:04:05Z'));
}

test('appended lines are merged over the first line, in order', (t) => {
  const s = store(t);
  const j = newJournal(plan, { address: '10.0.0.2/24', gateway: '10.0.0.1' });
  s.write(j);
  assert.equal(statSync(s.path(j)).mode & 0o777, 0o600);
  s.append(j, { steps: { a: { status: 'applied', ms: 1 } } });
  s.append(j, { steps: { b: { status: 'failed', exitCode: 2 }, a: { status: 'undone' } } });
  s.append(j, { state: 'rolled-back', error: 'b failed' }, true);
  const back = s.read(j)!;
  assert.deepEqual(back.steps, { a: { status: 'undone' }, b: { status: 'failed', exitCode: 2 }, c: { status: 'pending' } });
  assert.equal(back.state, 'rolled-back');
  assert.equal(back.error, 'b failed');
  assert.equal(readFileSync(s.path(j), 'utf8').trim().split('\n').length, 4);
});

test('a last line torn by a crash is ignored; a torn line in the middle is an error', (t) => {
  const s = store(t);
  const j = newJournal(plan, null);
  s.write(j);
  s.append(j, { steps: { a: { status: 'applied' } } });
  appendFileSync(s.path(j), '{"steps":{"b":{"sta');
  const back = s.read(j)!;
  assert.equal(back.steps.a!.status, 'applied');
  assert.equal(back.steps.b!.status, 'pending');
  assert.equal(back.state, 'applying');
  // While applying, a pending step may have been in flight: DEL undoes it too.
  assert.deepEqual([...undoCandidates(back)].sort(), ['a', 'b', 'c']);
  appendFileSync(s.path(j), '\n{"state":"applied"}\n');
  assert.throws(() => s.read(j), /line 3 is not JSON/);
});

test('remove takes leftover temp files of a writer killed mid-write along', (t) => {
  const s = store(t);
  const j = newJournal(plan, null);
  s.write(j);
  appendFileSync(`${s.path(j)}.tmp-99999`, 'half');
  s.remove(j);
  assert.equal(s.read(j), null);
  assert.deepEqual(s.list('net'), []);
});

test('journal file names map back to attachments; ids with dots and dashes survive', () => {
  assert.deepEqual(attachmentOfFile('net', 'c-1.x@eth0.jsonl'), { network: 'net', containerId: 'c-1.x', ifName: 'eth0' });
  assert.deepEqual(attachmentOfFile('net', 'c@we@ird.jsonl'), { network: 'net', containerId: 'c', ifName: 'we@ird' });
  assert.equal(attachmentOfFile('net', 'c@eth0.jsonl.tmp-12'), null);
  assert.equal(attachmentOfFile('net', 'c@eth0.json'), null);
});

test('a step applied for certain drops the undo of the step it supersedes; one in doubt does not', () => {
  const steps = plan.steps.map((s) => (s.id === 'b' ? { ...s, supersedes: 'a' } : s));
  const j = newJournal({ ...plan, steps }, null);
  j.steps.a = { status: 'applied' };
  j.steps.b = { status: 'applied' };
  assert.deepEqual([...undoCandidates(j)].sort(), ['b', 'c'], 'c is pending while applying');
  j.steps.b = { status: 'unknown' };
  assert.deepEqual([...undoCandidates(j)].sort(), ['a', 'b', 'c']);
  j.steps.b = { status: 'pending' };
  assert.deepEqual([...undoCandidates(j)].sort(), ['a', 'b', 'c'], 'a crash may have stopped it half-way');
});
