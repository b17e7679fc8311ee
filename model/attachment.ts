// What names an attachment may carry: the rules of the CNI spec and of `ip`'s batch parser,
// shared by the plugin (CNI_* environment) and the node agent (its API).
export const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function ifNameProblem(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (Buffer.byteLength(name) > 15) return 'is longer than 15 bytes';
  if (name === '.' || name === '..') return 'may not be "." or ".."';
  if (/[/:\s]/.test(name)) return 'may not contain "/", ":" or white space';
  // The name is passed to `ip -batch`, whose line parser treats these specially.
  if (/["'\\#;]/.test(name)) return 'may not contain quotes, "\\", "#" or ";"';
  return null;
}
