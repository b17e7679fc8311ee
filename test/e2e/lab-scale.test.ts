// The lab at 8 nodes x 16 pods (issue 6 §3): every one of the 16 256 pod pairs reachable, with
// the kernel's neighbour table (shared by every namespace here) refusing no entry on the way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labSkipReason, testLab } from '../helpers/lab.ts';
import { pingAll, renderMatrix } from '../../lab/check.ts';
import { neighbourTable, diagnose, renderDiagnosis } from '../../lab/diagnose.ts';

const skip = labSkipReason();

test('lab 8 x 16: all-pairs check passes and no neighbour entry is refused', { skip, timeout: 300_000 }, async (t) => {
  const lab = testLab('sc');
  t.after(() => lab.down());
  const up = await lab.up(8, 16);
  t.diagnostic(`lab up in ${up.timings.total} ms (pods ${up.timings.pods} ms)`);
  assert.equal(up.state.pods.filter((p) => p.state === 'ready').length, 128);
  const before = neighbourTable();
  const m = await pingAll(up.state);
  const after = neighbourTable();
  t.diagnostic(`${m.pairs} pairs checked in ${m.ms} ms; neighbour table ${after?.entries} entries, ${after && before ? after.tableFulls - before.tableFulls : '?'} refused`);
  assert.equal(m.pairs, 128 * 127);
  assert.deepEqual(m.failures, [], renderMatrix(m) + renderDiagnosis(await diagnose(up.state), { before, after }));
  if (before && after) assert.equal(after.tableFulls - before.tableFulls, 0, 'the neighbour table refused entries');
});
