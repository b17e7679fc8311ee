// Secret files a mode's node plan names (NodePlanner.secretFiles: BGP passwords): read by the
// agent only (the plugin never needs them, and the CNI config names files, never secrets).
// An unreadable file, or text the mode refuses, is code 7 naming the config field; the text
// itself never appears in a message.
import { readFileSync } from 'node:fs';
import { CniError, Code } from '../model/errors.ts';

/** The files' text by field, without the one trailing newline an editor adds. */
export function readSecretFiles(files: Record<string, string>, check?: (field: string, text: string) => void): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, path] of Object.entries(files)) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new CniError(Code.InvalidConfig, `invalid network config: ${field}`, `${field}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    text = text.replace(/\r?\n$/, '');
    check?.(field, text);
    out[field] = text;
  }
  return out;
}
