// What names an attachment may carry: the rules of the CNI spec and of `ip`'s batch parser,
// shared by the plugin (CNI_* environment) and the node agent (its API).
export const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Runtimes use 64 hex digits; the id is part of journal and lock file names (255 bytes at most). */
export const MAX_CONTAINER_ID = 128;

export function containerIdProblem(id: string): string | null {
  if (id.length === 0) return 'is empty';
  if (id.length > MAX_CONTAINER_ID) return `is longer than ${MAX_CONTAINER_ID} characters (${id.length})`;
  if (!CONTAINER_ID.test(id)) return 'must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$';
  return null;
}

export function ifNameProblem(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (Buffer.byteLength(name) > 15) return 'is longer than 15 bytes';
  if (name === '.' || name === '..') return 'may not be "." or ".."';
  if (/[/:\s]/.test(name)) return 'may not contain "/", ":" or white space';
  if (/[\x00-\x1f\x7f]/.test(name)) return 'may not contain control characters';
  // The name is passed to `ip -batch`, whose line parser treats these specially.
  if (/["'\\#;]/.test(name)) return 'may not contain quotes, "\\", "#" or ";"';
  return null;
}
