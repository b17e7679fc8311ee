// Reads a network config the way a runtime would: a .conf, or the testcni entry of a
// .conflist with the list's name and cniVersion injected.
import { readFileSync } from 'node:fs';
import { parseJson } from '../cni/config.ts';
import { DEFAULT_NETWORK } from '../schemas/network-config.ts';
import { CniError, Code } from '../model/errors.ts';

export const DEFAULT_CONFIG = '/etc/cni/net.d/10-testcni.conflist';

/** `path` "default" is the embedded default network; undefined or "-" is stdin. */
export function readNetworkConfig(path: string | undefined, stdin: () => string): Record<string, unknown> {
  if (path === 'default') return { ...DEFAULT_NETWORK };
  let text: string;
  try {
    text = path === undefined || path === '-' ? stdin() : readFileSync(path, 'utf8');
  } catch (e) {
    throw new CniError(Code.IoFailure, `cannot read ${path}`, (e as Error).message);
  }
  const raw = parseJson(text) as Record<string, unknown>;
  if (raw && Array.isArray(raw.plugins)) {
    const entry = (raw.plugins as Record<string, unknown>[]).find((p) => p.type === 'testcni');
    if (!entry) throw new CniError(Code.InvalidConfig, 'no testcni plugin in the conflist', String(path));
    return { ...entry, cniVersion: raw.cniVersion, name: raw.name };
  }
  return raw;
}
