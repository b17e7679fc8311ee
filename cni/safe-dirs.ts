// The state and file-IPAM directories, checked before a verb writes anything (code 5: the node's
// filesystem is not fit to use; STATUS reports the same as not ready).
import { CniError, Code } from '../model/errors.ts';
import type { NetworkConfig } from '../model/config.ts';
import { unsafeDirProblem } from '../lib/safe-dir.ts';

export function unsafeDirs(config: NetworkConfig): string[] {
  const dirs: [string, string][] = [['state dir', config.stateDir]];
  if (config.ipam.type === 'file') dirs.push(['IPAM data dir', config.ipam.dataDir]);
  return dirs.flatMap(([what, dir]) => {
    const why = unsafeDirProblem(dir);
    return why ? [`${what} ${dir} is unsafe: ${why}`] : [];
  });
}

export function requireSafeDirs(config: NetworkConfig): void {
  const problems = unsafeDirs(config);
  if (problems.length > 0) {
    throw new CniError(Code.IoFailure, 'a data directory others can write to', `${problems.join('; ')}; make it root's and not group or world writable`);
  }
}
