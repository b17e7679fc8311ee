// A lock file holding the owner's PID, created with O_EXCL. A lock whose owner has died
// (SIGKILL, OOM) is taken over, so a crash never wedges later calls.
import { readFileSync, statSync } from 'node:fs';
import { createExclusive, removeIfExists } from './atomic-file.ts';

/** How long a lock file may stay without a PID: its creator writes one right after creating it. */
export const UNWRITTEN_LOCK_GRACE_MS = 1000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The lock file's owner; null when the file is gone, NaN when it holds no PID. */
function ownerOf(path: string): { pid: number; ageMs: number } | null {
  try {
    const ageMs = Date.now() - statSync(path).mtimeMs;
    return { pid: Number(readFileSync(path, 'utf8').trim() || NaN), ageMs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export class LockTimeout extends Error {}

export async function withPidLock<T>(path: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (;;) {
    if (createExclusive(path, String(process.pid))) break;
    const owner = ownerOf(path);
    // Released meanwhile: try again. (Removing the path now could remove a lock just taken.)
    if (owner === null) continue;
    // No PID yet is a lock being created; still none after the grace, its creator died between
    // create and write.
    const unwritten = !Number.isInteger(owner.pid) || owner.pid <= 0;
    if (unwritten ? owner.ageMs > UNWRITTEN_LOCK_GRACE_MS : !alive(owner.pid)) {
      removeIfExists(path);
      continue;
    }
    if (Date.now() >= deadline) throw new LockTimeout(`lock ${path} is held by ${unwritten ? 'a process still creating it' : `pid ${owner.pid}`}`);
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 50);
  }
  try {
    return await fn();
  } finally {
    removeIfExists(path);
  }
}
