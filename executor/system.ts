// The executor's in-process view of the node: what it reads and writes without starting a
// process. One seam, so tests can run the executor without touching the machine.
import { readFileSync, writeFileSync, existsSync, readdirSync, statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { HOST, type Ns } from '../model/plan.ts';
import { writeFileAtomic } from '../lib/atomic-file.ts';

export interface NodeSystem {
  /** link names in the calling process's netns */
  linkNames(): string[];
  /** IPv4 neighbour entries of a device of the calling process's netns (the `neigh` query) */
  neighbours(dev: string): NeighbourEntry[];
  /** a sysctl of the calling process's netns, or null when the kernel has no such key */
  readSysctl(key: string): string | null;
  writeSysctl(key: string, value: string): void;
  /** a file's content, or null when it does not exist */
  readFile(path: string): string | null;
  /** what is at a path (the `path` query), or null when nothing is; with `list`, a directory's files */
  statPath(path: string, list?: boolean): PathInfo | null;
  /** replaces a file atomically (temp file, fsync, rename) */
  writeFile(path: string, content: string, mode: number): void;
  /** a link's operational state ("up", "down", …) of the calling process's netns, or null when
   *  it cannot be read without a process (sysfs belongs to another namespace) */
  operState(link: string): string | null;
  /** a link's index in the calling process's netns, 0 when there is no such link, or null when it
   *  cannot be read without a process (as operState) */
  ifindex(link: string): number | null;
  nsExists(ns: Ns): boolean;
}

/** What the `neigh` query yields (model/plan.ts Query). */
export interface NeighbourEntry {
  dst: string;
  lladdr: string;
  state: string[];
}

/** ARP flags of /proc/net/arp: the entry is complete, or permanent (include/uapi/linux/if_arp.h). */
const ATF_COM = 0x02;
const ATF_PERM = 0x04;

/** /proc/net/arp's rows for `dev` ("IP address  HW type  Flags  HW address  Mask  Device"). */
export function parseProcArp(text: string, dev: string): NeighbourEntry[] {
  return text.split('\n').slice(1).flatMap((line) => {
    const [ip, , flags, mac, , device] = line.trim().split(/\s+/);
    const f = Number(flags);
    if (device !== dev || !ip || !mac || !(f & (ATF_COM | ATF_PERM))) return []; // incomplete: no address yet
    return [{ dst: ip, lladdr: mac, state: f & ATF_PERM ? ['PERMANENT'] : [] }];
  });
}

/** What the `path` query yields (model/plan.ts Query). */
export interface PathInfo {
  type: 'file' | 'directory' | 'other';
  /** the statfs magic of the file system holding it, in hex ("cafe4a11": bpffs) */
  fs: string;
  /** for a directory, when the query asks to `list`: the files below it, two levels deep, as sorted relative paths
   *  ("maps/testcni_eps"): what a bpffs pin directory holds, read without a process */
  files?: string[];
}

/** Files (not directories) below `dir`, `depth` levels deep, relative and sorted. */
function filesBelow(dir: string, depth: number, prefix = ''): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return []; // gone, or not readable: nothing to list
  }
  return entries.flatMap((e) => (e.isDirectory() ? (depth > 1 ? filesBelow(join(dir, e.name), depth - 1, `${prefix}${e.name}/`) : []) : [`${prefix}${e.name}`])).sort();
}

/** The /proc/sys file of a dotted key. As in sysctl(8), a "/" inside a component stands for a
 *  dot in a name (net.ipv4.conf.eth0/100.forwarding is eth0.100's). */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key.split('.').map((c) => c.replace(/\//g, '.')).join('/')}`;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * /sys/class/net shows the network namespace of whoever mounted /sys, which need not be ours (a
 * simulated node shares the machine's /sys). It is ours when it lists exactly the links of our
 * namespace (from /proc/self/net/dev, which is always ours): a link just created here, with its
 * unique name, cannot be listed by another namespace's sysfs.
 */
export function sysfsIsOurs(): boolean {
  try {
    const sys = readdirSync('/sys/class/net').sort();
    const own = realSystem.linkNames().sort();
    return sys.length === own.length && sys.every((n, i) => n === own[i]);
  } catch {
    return false;
  }
}

// /proc/self/net and /proc/sys/net are per network namespace; /sys/class/net is only where
// sysfsIsOurs says so (a node, not a simulated one).
export const realSystem: NodeSystem = {
  neighbours: (dev) => parseProcArp(readOrNull('/proc/self/net/arp') ?? '', dev),
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
  statPath(path, list = false) {
    try {
      const st = statSync(path);
      const fs = statfsSync(path).type.toString(16);
      if (st.isDirectory()) return { type: 'directory', fs, ...(list ? { files: filesBelow(path, 2) } : {}) };
      return { type: st.isFile() ? 'file' : 'other', fs };
    } catch {
      return null;
    }
  },
  operState(link) {
    if (!sysfsIsOurs()) return null;
    return readOrNull(`/sys/class/net/${link}/operstate`)?.trim() ?? 'absent';
  },
  ifindex(link) {
    if (!sysfsIsOurs()) return null;
    return Number(readOrNull(`/sys/class/net/${link}/ifindex`)?.trim() ?? 0) || 0;
  },
  writeFile(path, content, mode) {
    writeFileAtomic(path, content, { mode });
  },
  nsExists(ns) {
    // A pod netns that is gone takes everything inside it along.
    return ns === HOST || (ns !== '' && existsSync(ns));
  },
};

/** realSystem with sysctls read and written under `root` instead of /proc/sys: a container whose
 *  own /proc/sys is read-only (every unprivileged one) reaches the node's through a mount of the
 *  node's /proc/sys/net (the agent's --proc-sys; see the manifests). */
export function systemWithProcSys(root: string): NodeSystem {
  if (root === '/proc/sys') return realSystem;
  const at = (key: string) => root + sysctlPath(key).slice('/proc/sys'.length);
  return {
    ...realSystem,
    readSysctl: (key) => readOrNull(at(key)),
    writeSysctl(key, value) {
      writeFileSync(at(key), value);
    },
  };
}
