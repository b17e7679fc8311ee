// A failing filesystem of the node (full, read-only, over quota, an I/O error) is an I/O
// failure, CNI code 5, naming the path and errno: not an internal error (999).
import { CniError, Code } from '../model/errors.ts';

/** The CNI error for a Node.js system call failure, or null for anything else. */
export function ioFailureOf(e: unknown): CniError | null {
  const err = e as NodeJS.ErrnoException | null;
  if (!err || typeof err.code !== 'string' || typeof err.syscall !== 'string') return null;
  return new CniError(Code.IoFailure, `I/O failure (${err.code})`, err.message);
}

/** Reads all of stdin; one that cannot be read (a directory, a closed descriptor) is code 5. */
export function readAllStdin(read: () => string): string {
  try {
    return read();
  } catch (e) {
    throw new CniError(Code.IoFailure, 'cannot read the network config from stdin', (e as Error).message);
  }
}
