import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, utimesSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { sweepDeadWriterFiles } from '../../lib/leftovers.ts';

test('temp and probe files of dead writers older than the grace are removed; a live writer\'s and other files stay', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-left-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dead = spawnSync('/bin/true').pid!;
  const old = (Date.now() - 60_000) / 1000;
  const files = {
    [`c1@eth0.jsonl.tmp-${dead}`]: true,
    [`.write-probe-${dead}`]: true,
    [`c2@eth0.jsonl.tmp-${process.pid}`]: false, // live writer
    [`c3@eth0.jsonl`]: false,
    [`notes.tmp-x`]: false,
  };
  for (const f of Object.keys(files)) {
    writeFileSync(join(dir, f), 'x');
    utimesSync(join(dir, f), old, old);
  }
  writeFileSync(join(dir, `young.tmp-${dead}`), 'x');
  assert.deepEqual(sweepDeadWriterFiles(dir, 30_000).sort(), Object.keys(files).filter((f) => files[f]).sort());
  assert.deepEqual(readdirSync(dir).sort(), [...Object.keys(files).filter((f) => !files[f]), `young.tmp-${dead}`].sort());
  assert.deepEqual(sweepDeadWriterFiles(dir, 0), [`young.tmp-${dead}`]);
  assert.deepEqual(sweepDeadWriterFiles(join(dir, 'missing'), 0), []);
});
