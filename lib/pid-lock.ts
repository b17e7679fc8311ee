// A lock file holding the owner's PID. It is a symlink whose target is the PID: created with the
// PID in one atomic call (no window in which it exists without one), and a short symlink lives in
// its inode, so a lock can be taken on a full filesystem (DEL must work there). A lock whose
// owner has died (SIGKILL, OOM) is taken over, so a crash never wedges later calls; GC removes
// locks of dead owners that nobody came back for (sweepStaleLocks).
import { readFileSync, readdirSync, readlinkSync, lstatSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { removeIfExists } from './atomic-file.ts';

/** How long a lock file may stay without a PID: only regular-file locks of earlier releases,
 *  whose creator wrote the PID right after creating the file, can be seen without one. */
export const UNWRITTEN_LOCK_GRACE_MS = 1000;

export const LOCK_EXT = '.lock';

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The lock's owner; null when the lock is gone, NaN when it holds no PID. */
export function lockOwner(path: string): { pid: number; ageMs: number } | null {
  try {
    const st = lstatSync(path);
    const text = st.isSymbolicLink() ? readlinkSync(path) : readFileSync(path, 'utf8');
    return { pid: Number(text.trim() || NaN), ageMs: Date.now() - st.mtimeMs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** True when the lock's owner is gone (or, without a PID, its creator died before writing one). */
function abandoned(owner: { pid: number; ageMs: number }): boolean {
  const unwritten = !Number.isInteger(owner.pid) || owner.pid <= 0;
  return unwritten ? owner.ageMs > UNWRITTEN_LOCK_GRACE_MS : !alive(owner.pid);
}

function tryCreate(path: string): boolean {
  try {
    symlinkSync(String(process.pid), path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new LockUnavailable(path, e as NodeJS.ErrnoException);
  }
}

export class LockTimeout extends Error {}

/** The lock could not be created at all (read-only filesystem, no inode left, …). */
export class LockUnavailable extends Error {
  constructor(
    readonly path: string,
    override readonly cause: NodeJS.ErrnoException,
  ) {
    super(cause.message);
  }
}

export async function withPidLock<T>(path: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (;;) {
    if (tryCreate(path)) break;
    const owner = lockOwner(path);
    // Released meanwhile: try again. (Removing the path now could remove a lock just taken.)
    if (owner === null) continue;
    if (abandoned(owner)) {
      removeIfExists(path);
      continue;
    }
    const holder = Number.isInteger(owner.pid) && owner.pid > 0 ? `pid ${owner.pid}` : 'a process still creating it';
    if (Date.now() >= deadline) throw new LockTimeout(`lock ${path} is held by ${holder}`);
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 50);
  }
  try {
    return await fn();
  } finally {
    removeIfExists(path);
  }
}

/**
 * Removes the locks in `dir` whose owner has died and that are older than `graceMs`, by taking
 * each over as any caller would (so a lock taken meanwhile by a live process is left alone).
 * Returns the names removed.
 */
export async function sweepStaleLocks(dir: string, graceMs: number): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => f.endsWith(LOCK_EXT));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const removed: string[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const owner = lockOwner(path);
    if (owner === null || owner.ageMs < graceMs || !abandoned(owner)) continue;
    try {
      await withPidLock(path, 0, async () => {});
      removed.push(name);
    } catch (e) {
      if (!(e instanceof LockTimeout)) throw e; // taken by a live process meanwhile
    }
  }
  return removed;
}
