// Small file primitives with crash-safe semantics: atomic replace, exclusive create, complete
// writes. A filesystem that fills up makes write(2) write less than asked (a short write) before
// it fails with ENOSPC, so every write here is checked to the last byte, and a file that could
// not be written whole is removed rather than left half-written.
import { openSync, writeSync, fsyncSync, closeSync, renameSync, mkdirSync, unlinkSync, fstatSync, ftruncateSync, constants } from 'node:fs';
import { join } from 'node:path';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;

/** Writes all of `buf` at `position` (pwrite); a write that stops short throws. */
function writeAllAt(fd: number, buf: Buffer, position: number): void {
  let offset = 0;
  while (offset < buf.length) {
    const n = writeSync(fd, buf, offset, buf.length - offset, position + offset);
    if (n <= 0) throw Object.assign(new Error(`write made no progress after ${offset} of ${buf.length} bytes`), { code: 'EIO', syscall: 'write' });
    offset += n;
  }
}

/** Writes all of `data` at the descriptor's offset; a write that stops short throws. */
export function writeAll(fd: number, data: string | Buffer): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  let offset = 0;
  while (offset < buf.length) {
    const n = writeSync(fd, buf, offset, buf.length - offset);
    if (n <= 0) throw Object.assign(new Error(`write made no progress after ${offset} of ${buf.length} bytes`), { code: 'EIO', syscall: 'write' });
    offset += n;
  }
}

/** Creates a file that did not exist and opens it for writing. Never follows a symlink nor
 *  writes into an existing file (a planted link cannot redirect the write); a leftover at
 *  `path` (a temp file of a dead writer of the same name) is removed and the create retried. */
export function openExclusive(path: string, mode = 0o600): number {
  const flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
  try {
    return openSync(path, flags, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    removeIfExists(path);
    return openSync(path, flags, mode);
  }
}

/** Writes `text` to a new file at `path` (see openExclusive); on failure nothing is left. */
function writeNew(path: string, text: string, mode: number, fsync: boolean): void {
  const fd = openExclusive(path, mode);
  let closed = false;
  try {
    writeAll(fd, text);
    if (fsync) fsyncSync(fd);
    closed = true;
    closeSync(fd);
  } catch (e) {
    if (!closed) closeSync(fd);
    removeIfExists(path);
    throw e;
  }
}

/** Replaces `path` with `text` so a reader sees the old or the new file, never a mix. */
export function writeFileAtomic(path: string, text: string, opts: { mode?: number; fsync?: boolean } = {}): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeNew(tmp, text, opts.mode ?? 0o600, opts.fsync !== false);
  try {
    renameSync(tmp, path);
  } catch (e) {
    removeIfExists(tmp);
    throw e;
  }
}

/** Overwrites a small file in place (no temp file a crash could leave), but only a regular
 *  file of its own: a symlink, a FIFO or a hard link to some other file planted at `path` is
 *  removed and a new file created instead of being written through. */
export function overwriteOwnFile(path: string, text: string, mode = 0o600): void {
  let fd: number;
  try {
    fd = openSync(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK, mode);
  } catch (e) {
    // ELOOP: a symlink; ENXIO: a FIFO nobody reads.
    if (!['ELOOP', 'ENXIO'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    fd = openExclusive(path, mode);
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.nlink !== 1) {
    closeSync(fd);
    fd = openExclusive(path, mode);
  }
  try {
    // Written from the start, then cut to length only when the old content was longer: a
    // truncate is a metadata change the usual same-length rewrite does not need.
    const buf = Buffer.from(text);
    writeAllAt(fd, buf, 0);
    if (st.size > buf.length) ftruncateSync(fd, buf.length);
  } finally {
    closeSync(fd);
  }
}

export function ensureDir(path: string, mode = 0o700): void {
  mkdirSync(path, { recursive: true, mode });
}

/** Creates `path` only if it does not exist; false when it does (`replace`: a leftover there
 *  is removed first, see openExclusive). Written whole or not at all; never through a link. */
export function createExclusive(path: string, text: string, mode = 0o600, opts: { replace?: boolean } = {}): boolean {
  if (opts.replace) {
    writeNew(path, text, mode, false);
    return true;
  }
  let fd: number;
  try {
    fd = openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    writeAll(fd, text);
  } catch (e) {
    closeSync(fd);
    removeIfExists(path);
    throw e;
  }
  closeSync(fd);
  return true;
}

export function removeIfExists(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Throws unless `bytes` can really be written in `dir` (a full or read-only filesystem
 *  passes access(2) checks); the probe file is removed again. */
export function probeWritable(dir: string, bytes = 4096): void {
  const probe = join(dir, `.write-probe-${process.pid}`);
  writeNew(probe, 'x'.repeat(bytes), 0o600, false);
  removeIfExists(probe);
}
