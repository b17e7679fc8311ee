import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync, utimesSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { withPidLock, LockTimeout, UNWRITTEN_LOCK_GRACE_MS } from '../../lib/pid-lock.ts';

function lockPath(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-lock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'a.lock');
}

const isTimeout = (e: unknown) => e instanceof LockTimeout;

test('a free lock holds our PID while fn runs and is gone after', async (t) => {
  const path = lockPath(t);
  const seen = await withPidLock(path, 1000, async () => readFileSync(path, 'utf8'));
  assert.equal(seen, String(process.pid));
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
  assert.equal(await withPidLock(path, 1000, async () => readFileSync(path, 'utf8')), String(process.pid));
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
  const real = { readFileSync: fs.readFileSync, statSync: fs.statSync };
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
  Object.assign(fs, { readFileSync: race(real.readFileSync), statSync: race(real.statSync) });
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
