import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { netnsKind } from '../../cni/netns.ts';
import { rootSkipReason, uniquePrefix, addNetns, delNetns } from '../helpers/netns.ts';

test('namespace files are told apart by type without a process', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-ns-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'file'), 'x');
  assert.equal(netnsKind('/proc/self/ns/net'), 'netns');
  assert.equal(netnsKind('/proc/self/ns/uts'), 'a uts namespace');
  assert.equal(netnsKind('/proc/self/ns/ipc'), 'a ipc namespace');
  assert.equal(netnsKind(join(dir, 'file')), 'not a namespace');
  assert.equal(netnsKind(dir), 'not a namespace');
  assert.equal(netnsKind(join(dir, 'missing')), 'missing');
  assert.equal(netnsKind('/dev/null'), 'not a namespace', 'a device is never opened');
});

test('a bind-mounted netns (what runtimes pass) is a netns; a bind-mounted uts namespace is not', { skip: rootSkipReason() ?? false }, (t) => {
  const name = `${uniquePrefix('ns')}x`;
  t.after(() => delNetns(name));
  assert.equal(netnsKind(addNetns(name)), 'netns');
  const dir = mkdtempSync(join(tmpdir(), 'tcx-ns-'));
  const uts = join(dir, 'uts');
  writeFileSync(uts, '');
  assert.equal(spawnSync('mount', ['--bind', '/proc/self/ns/uts', uts]).status, 0);
  t.after(() => {
    spawnSync('umount', [uts]);
    rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(netnsKind(uts), 'a uts namespace');
});
