import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync, chmodSync, chownSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { unsafeDirProblem } from '../../lib/safe-dir.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root (the check applies to root, and chown)';

test('a directory root writes into must be root\'s and writable by nobody else', { skip }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-safe-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ok = join(dir, 'ok');
  mkdirSync(ok, { mode: 0o755 });
  assert.equal(unsafeDirProblem(ok), null, 'under a sticky /tmp');
  assert.equal(unsafeDirProblem(join(ok, 'not', 'yet')), null, 'missing components are created by the plugin');
  const world = join(dir, 'world');
  mkdirSync(world);
  chmodSync(world, 0o777);
  assert.match(unsafeDirProblem(world)!, /writable by others/);
  assert.match(unsafeDirProblem(join(world, 'state'))!, /writable by others/, 'a writable parent is as bad');
  const group = join(dir, 'group');
  mkdirSync(group);
  chmodSync(group, 0o775);
  assert.match(unsafeDirProblem(group)!, /writable by its group/);
  const theirs = join(dir, 'theirs');
  mkdirSync(theirs, { mode: 0o700 });
  chownSync(theirs, 1000, 1000);
  assert.match(unsafeDirProblem(theirs)!, /owned by uid 1000/);
  symlinkSync(world, join(dir, 'link'));
  assert.match(unsafeDirProblem(join(dir, 'link'))!, /writable by others/, 'judged by what a symlink points to');
  const sticky = join(dir, 'sticky');
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  assert.match(unsafeDirProblem(sticky)!, /writable by others/, 'sticky is fine as a parent, not as the directory itself');
  assert.equal(unsafeDirProblem(world, 1000), null, 'not checked when not running as root');
});
