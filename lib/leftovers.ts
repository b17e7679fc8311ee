// Files a writer leaves when it is killed mid-write: "<file>.tmp-<pid>" (atomic replace) and
// ".write-probe-<pid>" (STATUS's write test). Their name says whose they are, so GC removes
// those of dead processes once they are older than a grace period, and never a live writer's.
import { readdirSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { removeIfExists } from './atomic-file.ts';
import { alive } from './pid-lock.ts';

const WRITER_FILE = /(?:\.tmp-|^\.write-probe-)(\d+)$/;

/** Removes such files of dead processes in `dir` (not below it); returns their names. */
export function sweepDeadWriterFiles(dir: string, graceMs: number): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = Number(WRITER_FILE.exec(name)?.[1] ?? NaN);
    if (!Number.isInteger(pid) || pid <= 0 || alive(pid)) continue;
    try {
      if (Date.now() - lstatSync(join(dir, name)).mtimeMs < graceMs) continue;
    } catch {
      continue; // gone meanwhile
    }
    if (removeIfExists(join(dir, name))) removed.push(name);
  }
  return removed;
}
