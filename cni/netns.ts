// Is CNI_NETNS a network namespace? Checked before anything is leased or written, without
// starting a process. statfs says whether the path is a namespace file at all (nsfs, or proc on
// kernels before 3.19), which every namespace type shares. The type itself is in the name the
// kernel gives the namespace, "net:[4026532…]" or "uts:[…]", "mnt:[…]", …, found without a
// process: for a /proc/<pid>/ns link, readlink of /proc/self/fd/N of the opened file reads it;
// for a bind mount (/var/run/netns/NAME, what runtimes pass) that readlink gives the mount path,
// and the name is the root of that mount in /proc/self/mountinfo, found by the mnt_id that
// /proc/self/fdinfo/N gives. (The ioctl NS_GET_NSTYPE would tell the same, but Node has no
// ioctl; nsenter or `ip netns identify` would cost a process per call.)
import { statfsSync, openSync, closeSync, readlinkSync, readFileSync, constants } from 'node:fs';
import { CniError, Code } from '../model/errors.ts';

const NSFS_MAGIC = 0x6e736673;
const PROC_SUPER_MAGIC = 0x9fa0;

export type NetnsCheck = 'netns' | 'missing' | 'not a namespace' | `a ${string} namespace` | `unreadable (${string})`;

function failure(e: unknown): NetnsCheck {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : `unreadable (${(e as Error).message})`;
}

export function netnsKind(path: string): NetnsCheck {
  let type: number;
  try {
    type = statfsSync(path).type;
  } catch (e) {
    return failure(e);
  }
  // Nothing else is opened: a device or FIFO never gets that far.
  if (type !== NSFS_MAGIC && type !== PROC_SUPER_MAGIC) return 'not a namespace';
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    return failure(e);
  }
  try {
    const kind = nsType(readlinkSync(`/proc/self/fd/${fd}`)) ?? nsType(mountRootOf(fd));
    if (kind === 'net') return 'netns';
    return kind ? `a ${kind} namespace` : 'not a namespace';
  } finally {
    closeSync(fd);
  }
}

/** "net" for "net:[4026532282]". */
function nsType(name: string | null): string | null {
  return (name && /^([a-z_]+):\[\d+\]$/.exec(name)?.[1]) || null;
}

/** The root (in its filesystem) of the mount an open file lives on: for a namespace bind mount,
 *  the namespace's name. */
function mountRootOf(fd: number): string | null {
  const mntId = /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
  if (mntId === undefined) return null;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (line.startsWith(`${mntId} `)) return line.split(' ')[3] ?? null;
  }
  return null;
}

/** ADD and CHECK: the netns must exist and be a network namespace. DEL (`mayBeGone`): a
 *  missing one is fine, a wrong one is not. Code 4 either way. */
export function requireNetns(path: string, opts: { mayBeGone?: boolean } = {}): void {
  const kind = netnsKind(path);
  if (kind === 'netns' || (kind === 'missing' && opts.mayBeGone)) return;
  if (kind === 'missing') throw new CniError(Code.InvalidEnv, 'CNI_NETNS does not exist', `no such netns: ${path}`);
  throw new CniError(Code.InvalidEnv, 'CNI_NETNS is not a network namespace', `${path} is ${kind}`);
}
