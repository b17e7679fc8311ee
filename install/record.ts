// What `testcni install` put on the node, so `testcni uninstall` removes exactly that.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, ensureDir, removeIfExists } from '../lib/atomic-file.ts';

export interface InstallRecord {
  version: 1;
  binary: { path: string; sha256: string } | null;
  /** compiled BPF objects copied beside the binary (the vxlan mode's) */
  objects?: { path: string; sha256: string }[];
  /** the conflist as written (uninstall reads the network's names and paths from it) */
  conflist: { path: string; text: string } | null;
  installedAt: string;
}

export const RECORD_FILE = 'install.json';

export function recordPath(stateDir: string): string {
  return join(stateDir, RECORD_FILE);
}

export function readRecord(stateDir: string): InstallRecord | null {
  try {
    const r = JSON.parse(readFileSync(recordPath(stateDir), 'utf8')) as InstallRecord;
    return r && r.version === 1 ? r : null;
  } catch {
    return null;
  }
}

export function writeRecord(stateDir: string, r: InstallRecord): void {
  ensureDir(stateDir, 0o755);
  writeFileAtomic(recordPath(stateDir), JSON.stringify(r, null, 2) + '\n', { mode: 0o600 });
}

export function removeRecord(stateDir: string): boolean {
  return removeIfExists(recordPath(stateDir));
}
