// A lock file holding the owner's PID, created with O_EXCL. A lock whose owner has died
// (SIGKILL, OOM) is taken over, so a crash never wedges later calls.
import { readFileSync } from 'node:fs';
import { createExclusive, removeIfExists } from './atomic-file.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class LockTimeout extends Error {}

export async function withPidLock<T>(path: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (;;) {
    if (createExclusive(path, String(process.pid))) break;
    let owner = NaN;
    try {
      owner = Number(readFileSync(path, 'utf8'));
    } catch { /* released meanwhile */ }
    // An empty file is a lock whose owner died between create and write.
    if (Number.isNaN(owner) || owner === 0 || !alive(owner)) {
      removeIfExists(path);
      continue;
    }
    if (Date.now() >= deadline) throw new LockTimeout(`lock ${path} is held by pid ${owner}`);
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 50);
  }
  try {
    return await fn();
  } finally {
    removeIfExists(path);
  }
}
