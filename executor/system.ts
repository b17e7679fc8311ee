// The executor's in-process view of the node: what it reads and writes without starting a
// process. One seam, so tests can run the executor without touching the machine.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { HOST, type Ns } from '../model/plan.ts';
import { writeFileAtomic } from '../lib/atomic-file.ts';

export interface NodeSystem {
  /** link names in the calling process's netns */
  linkNames(): string[];
  /** a sysctl of the calling process's netns, or null when the kernel has no such key */
  readSysctl(key: string): string | null;
  writeSysctl(key: string, value: string): void;
  /** a file's content, or null when it does not exist */
  readFile(path: string): string | null;
  /** replaces a file atomically (temp file, fsync, rename) */
  writeFile(path: string, content: string, mode: number): void;
  nsExists(ns: Ns): boolean;
}

export function sysctlPath(key: string): string {
  return `/proc/sys/${key.replace(/\./g, '/')}`;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

// /proc/self/net and /proc/sys/net are per network namespace; /sys/class/net is not (it shows
// the namespace of whoever mounted /sys), so it is not used here.
export const realSystem: NodeSystem = {
  linkNames() {
    return readFileSync('/proc/self/net/dev', 'utf8')
      .split('\n')
      .slice(2)
      .map((l) => l.split(':')[0]!.trim())
      .filter(Boolean);
  },
  readSysctl: (key) => readOrNull(sysctlPath(key)),
  writeSysctl(key, value) {
    writeFileSync(sysctlPath(key), value);
  },
  readFile: readOrNull,
  writeFile(path, content, mode) {
    writeFileAtomic(path, content, { mode });
  },
  nsExists(ns) {
    // A pod netns that is gone takes everything inside it along.
    return ns === HOST || (ns !== '' && existsSync(ns));
  },
};
