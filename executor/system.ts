// The executor's in-process view of the node: what it reads and writes without starting a
// process. One seam, so tests can run the executor without touching the machine.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { HOST, type Ns } from '../planner/types.ts';

export interface NodeSystem {
  /** link names in the calling process's netns */
  linkNames(): string[];
  /** a sysctl of the calling process's netns, or null when the kernel has no such key */
  readSysctl(key: string): string | null;
  writeSysctl(key: string, value: string): void;
  nsExists(ns: Ns): boolean;
}

export function sysctlPath(key: string): string {
  return `/proc/sys/${key.replace(/\./g, '/')}`;
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
  readSysctl(key) {
    try {
      return readFileSync(sysctlPath(key), 'utf8');
    } catch {
      return null;
    }
  },
  writeSysctl(key, value) {
    writeFileSync(sysctlPath(key), value);
  },
  nsExists(ns) {
    // A pod netns that is gone takes everything inside it along.
    return ns === HOST || (ns !== '' && existsSync(ns));
  },
};
