import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync, utimesSync, lstatSync, readlinkSync, symlinkSync, lutimesSync, readdirSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { withPidLock, sweepStaleLocks, LockTimeout, UNWRITTEN_LOCK_GRACE_MS } from '../../lib/pid-lock.ts';

function lockPath(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-lock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'a.lock');
}

const isTimeout = (e: unknown) => e instanceof LockTimeout;

test('a free lock holds our PID while fn runs and is gone after', async (t) => {
  const path = lockPath(t);
  const seen = await withPidLock(path, 1000, async () => ({ link: lstatSync(path).isSymbolicLink(), pid: readlinkSync(path) }));
  assert.deepEqual(seen, { link: true, pid: String(process.pid) }, 'a symlink to our PID: created with its PID in one call');
  assert.equal(existsSync(path), false);
});

test('a lock held by a live process is waited for, up to the timeout', async (t) => {
  const path = lockPath(t);
  writeFileSync(path, String(process.pid));
  let ran = false;
  await assert.rejects(withPidLock(path, 100, async () => { ran = true; }), isTimeout);
  assert.equal(ran, false);
  assert.equal(readFileSync(path, 'utf8'), String(process.pid), 'the holder keeps its lock');
});

test('a lock whose owner died is taken over', async (t) => {
  const path = lockPath(t);
  const dead = spawnSync('/bin/true').pid!; // exited and reaped
  writeFileSync(path, String(dead));
  assert.equal(await withPidLock(path, 1000, async () => readlinkSync(path)), String(process.pid));
});

test('a lock file without a PID yet is a lock being created: waited for, not taken over', async (t) => {
  const path = lockPath(t);
  writeFileSync(path, ''); // its creator is between create and write
  let ran = false;
  await assert.rejects(withPidLock(path, 150, async () => { ran = true; }), isTimeout);
  assert.equal(ran, false);
});

test('a lock file left without a PID by a creator that died is taken over after the grace', async (t) => {
  const path = lockPath(t);
  writeFileSync(path, '');
  const past = (Date.now() - UNWRITTEN_LOCK_GRACE_MS - 5000) / 1000;
  utimesSync(path, past, past);
  assert.equal(await withPidLock(path, 1000, async () => 'ran'), 'ran');
});

test('a lock released and taken by another process just before we read it is not removed', async (t) => {
  const path = lockPath(t);
  writeFileSync(path, String(process.pid)); // the first holder
  // Interleave: our create fails on the first holder's lock; before we look at it, that holder
  // releases and another process takes the lock.
  const real = { readFileSync: fs.readFileSync, lstatSync: fs.lstatSync };
  let raced = false;
  const race = <F extends (...a: never[]) => unknown>(orig: F) =>
    ((p: unknown, ...rest: never[]) => {
      if (p === path && !raced) {
        raced = true;
        fs.unlinkSync(path);
        writeFileSync(path, String(process.pid)); // the other process (alive)
        throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      }
      return orig(p as never, ...rest);
    }) as unknown as F;
  Object.assign(fs, { readFileSync: race(real.readFileSync), lstatSync: race(real.lstatSync) });
  syncBuiltinESMExports();
  t.after(() => {
    Object.assign(fs, real);
    syncBuiltinESMExports();
  });
  let ran = false;
  await assert.rejects(withPidLock(path, 100, async () => { ran = true; }), isTimeout);
  assert.ok(raced, 'the interleaving happened');
  assert.equal(ran, false, 'never inside while the other process holds the lock');
  assert.equal(existsSync(path), true, "the other process's lock is still there");
});

test('sweepStaleLocks removes locks of dead owners older than the grace, and nothing else', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-sweep-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dead = spawnSync('/bin/true').pid!;
  const old = (Date.now() - 60_000) / 1000;
  symlinkSync(String(dead), join(dir, 'dead-old.lock'));
  lutimesSync(join(dir, 'dead-old.lock'), old, old);
  symlinkSync(String(dead), join(dir, 'dead-young.lock'));
  symlinkSync(String(process.pid), join(dir, 'live-old.lock'));
  lutimesSync(join(dir, 'live-old.lock'), old, old);
  writeFileSync(join(dir, 'legacy-unwritten.lock'), ''); // a regular-file lock of an earlier release, never given a PID
  utimesSync(join(dir, 'legacy-unwritten.lock'), old, old);
  writeFileSync(join(dir, 'not-a-lock'), String(dead));
  assert.deepEqual((await sweepStaleLocks(dir, 30_000)).sort(), ['dead-old.lock', 'legacy-unwritten.lock']);
  assert.deepEqual(readdirSync(dir).sort(), ['dead-young.lock', 'live-old.lock', 'not-a-lock']);
  assert.deepEqual(await sweepStaleLocks(dir, 0), ['dead-young.lock'], 'without a grace every dead owner\'s lock goes');
  assert.deepEqual(await sweepStaleLocks(join(dir, 'missing'), 0), []);
});
