// Directories root writes into must be root's alone: with a directory (or a parent of it) that
// another user can write to, that user can plant links or swap the directory and make root
// write a file of their choosing. Checked while running as root; a sticky directory (/tmp) is
// safe to be a parent, as nobody can rename or remove what root owns there.
import { statSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const S_ISVTX = 0o1000;

/** Why `dir` is unsafe for root to write into, or null. Missing components are skipped (the
 *  plugin creates them, 0700/0755, root's). */
export function unsafeDirProblem(dir: string, uid = process.getuid?.() ?? -1): string | null {
  if (uid !== 0) return null;
  let target: string;
  try {
    target = realpathSync(dir); // a symlinked directory is judged by what it points to
  } catch {
    target = resolve(dir);
  }
  for (let p = target; ; p = dirname(p)) {
    let st = null;
    try {
      st = statSync(p);
    } catch { /* not there yet: created by the plugin, root's */ }
    if (st) {
      if (st.uid !== 0) return `${p} is owned by uid ${st.uid}, not root`;
      // A sticky parent (/tmp) is fine: nobody can rename or remove what root has in it.
      if (st.mode & 0o022 && (p === target || !(st.mode & S_ISVTX))) {
        return `${p} is writable by ${st.mode & 0o002 ? 'others' : 'its group'} (mode ${(st.mode & 0o7777).toString(8)})`;
      }
    }
    if (dirname(p) === p) return null;
  }
}
