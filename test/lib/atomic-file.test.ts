import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { mkdtempSync, rmSync, readFileSync, readdirSync, writeFileSync, symlinkSync, linkSync, lstatSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { writeAll, writeFileAtomic, createExclusive, overwriteOwnFile, probeWritable } from '../../lib/atomic-file.ts';
import { JournalStore, newJournal } from '../../executor/journal.ts';
import type { Plan } from '../../model/plan.ts';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-af-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Makes write(2) behave as on a filling disk: at most `chunk` bytes per call, then ENOSPC once
 *  `budget` bytes were written (Infinity: never). */
function fillingDisk(t: { after: (fn: () => void) => void }, chunk: number, budget = Infinity): void {
  const real = fs.writeSync;
  let written = 0;
  const fake = ((fd: number, buf: Buffer | string, offset?: number, length?: number) => {
    if (typeof buf === 'string') buf = Buffer.from(buf);
    const want = Math.min(length ?? buf.length - (offset ?? 0), chunk, budget - written);
    if (want <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
    written += want;
    return real(fd, buf, offset ?? 0, want);
  }) as typeof fs.writeSync;
  Object.assign(fs, { writeSync: fake });
  syncBuiltinESMExports();
  t.after(() => {
    Object.assign(fs, { writeSync: real });
    syncBuiltinESMExports();
  });
}

test('short writes are continued to the last byte', (t) => {
  const dir = tempDir(t);
  fillingDisk(t, 7);
  const text = 'x'.repeat(1000) + '\n';
  writeFileAtomic(join(dir, 'a'), text);
  assert.equal(readFileSync(join(dir, 'a'), 'utf8'), text);
  const fd = fs.openSync(join(dir, 'b'), 'w');
  writeAll(fd, text);
  fs.closeSync(fd);
  assert.equal(readFileSync(join(dir, 'b'), 'utf8'), text);
});

test('a write the disk cannot take leaves the old file and no temp file (never a cut file renamed into place)', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'j'), 'old\n');
  fillingDisk(t, 4096, 4096);
  assert.throws(() => writeFileAtomic(join(dir, 'j'), 'y'.repeat(10_000)), /ENOSPC/);
  assert.deepEqual(readdirSync(dir), ['j']);
  assert.equal(readFileSync(join(dir, 'j'), 'utf8'), 'old\n');
  assert.throws(() => createExclusive(join(dir, 'k'), 'z'.repeat(10_000)), /ENOSPC/);
  assert.deepEqual(readdirSync(dir), ['j'], 'a half-written exclusive file is removed');
});

test('a journal append the disk cannot take is cut off: the journal reads as before, and later appends still parse', (t) => {
  const dir = tempDir(t);
  const journals = new JournalStore(dir);
  const plan = { command: 'ADD', network: 'n', containerId: 'c', ifName: 'eth0', netns: '/x', mode: 'host-gw', inputsDigest: 'd', steps: [], result: null } as unknown as Plan;
  const j = newJournal(plan, null);
  journals.write(j);
  const before = readFileSync(journals.path(j), 'utf8');
  {
    const real = fs.writeSync;
    let calls = 0;
    Object.assign(fs, {
      writeSync: ((fd: number, buf: Buffer, off?: number, len?: number) => {
        if (calls++ === 0) return real(fd, buf, off ?? 0, Math.min(len ?? buf.length, 10)); // a short write, then the disk is full
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
      }) as typeof fs.writeSync,
    });
    syncBuiltinESMExports();
    try {
      assert.throws(() => journals.append(j, { state: 'applied' }), /ENOSPC/);
    } finally {
      Object.assign(fs, { writeSync: real });
      syncBuiltinESMExports();
    }
  }
  assert.equal(readFileSync(journals.path(j), 'utf8'), before, 'the torn line is gone');
  journals.append(j, { state: 'rolled-back' });
  assert.equal(journals.read(j)?.state, 'rolled-back');
});

test('temp files, reservations and cursors are never written through a planted symlink, hard link or FIFO', (t) => {
  const dir = tempDir(t);
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  // a temp file name an attacker guessed (the PID is no secret)
  symlinkSync(victim, join(dir, `j.tmp-${process.pid}`));
  writeFileAtomic(join(dir, 'j'), 'journal\n');
  assert.equal(readFileSync(join(dir, 'j'), 'utf8'), 'journal\n');
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');

  symlinkSync(victim, join(dir, '.reserving-x'));
  assert.equal(createExclusive(join(dir, '.reserving-x'), 'cid\r\neth0', 0o600, { replace: true }), true);
  assert.equal(lstatSync(join(dir, '.reserving-x')).isSymbolicLink(), false);
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');

  for (const plant of [(p: string) => symlinkSync(victim, p), (p: string) => linkSync(victim, p), (p: string) => { spawnSync('mkfifo', [p]); }]) {
    const cursor = join(dir, 'last_reserved_ip.0');
    rmSync(cursor, { force: true });
    plant(cursor);
    overwriteOwnFile(cursor, '10.0.0.9');
    assert.equal(readFileSync(cursor, 'utf8'), '10.0.0.9');
    assert.equal(lstatSync(cursor).nlink, 1);
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  }
  overwriteOwnFile(join(dir, 'last_reserved_ip.0'), '10.0.0.10');
  assert.equal(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8'), '10.0.0.10', 'its own file is overwritten in place');
});

test('probeWritable really writes: it fails where access(2) would pass', { skip: process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0 ? false : 'needs root and mount' }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-af-'));
  t.after(() => {
    spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  probeWritable(dir);
  assert.deepEqual(readdirSync(dir), [], 'the probe file is removed');
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4k', 'tcxprobe', dir]).status, 0);
  writeFileSync(join(dir, 'filler'), Buffer.alloc(4096));
  fs.accessSync(dir, fs.constants.W_OK);
  assert.throws(() => probeWritable(dir), /ENOSPC/);
  assert.deepEqual(readdirSync(dir), ['filler']);
});
