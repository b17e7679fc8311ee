// The node's CNI network config (the conflist in the runtime's conf dir). This module is its one
// owner: it composes it, checks it, writes it (temp file + rename) and removes it. On a node one
// component calls it: `testcni install` (DaemonSet and service-manager installs, once the agent
// is ready), or the agent itself when given --cni-conf-dir (the lab, which has no install step).
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { writeFileAtomic, ensureDir, removeIfExists } from '../lib/atomic-file.ts';
import { loadConfig, parseJson } from '../cni/config.ts';
import { CniError, Code } from '../model/errors.ts';
import type { NetworkConfig } from '../model/config.ts';

export const CONFLIST_NAME = '10-testcni.conflist';

/** Reference plugins testcni can be chained with, and the runtime capabilities each takes. */
export const CHAINABLE: Record<string, Record<string, boolean>> = {
  portmap: { portMappings: true },
  bandwidth: { bandwidth: true },
};

export interface ConflistSettings {
  network: string;
  /** the testcni plugin entry (the agent's `pluginEntry`: mode, subnet, cluster IPAM, …) */
  entry: Record<string, unknown>;
  /** reference plugins after testcni, in order (keys of CHAINABLE) */
  chain?: string[];
  /** default 1.1.0; 1.0.0 when chained, for reference plugins that stop at 1.0.0 */
  cniVersion?: string;
}

/** The conflist: testcni's entry, then the chained plugins. */
export function conflistFor(s: ConflistSettings): Record<string, unknown> {
  const chain = s.chain ?? [];
  for (const p of chain) if (!CHAINABLE[p]) throw new Error(`cannot chain ${JSON.stringify(p)}: one of ${Object.keys(CHAINABLE).join(', ')}`);
  return {
    cniVersion: s.cniVersion ?? (chain.length > 0 ? '1.0.0' : '1.1.0'),
    name: s.network,
    plugins: [
      s.entry,
      ...chain.map((type) => ({ type, capabilities: CHAINABLE[type] })),
    ],
  };
}

export function conflistText(doc: Record<string, unknown>): string {
  return JSON.stringify(doc, null, 2) + '\n';
}

/** The testcni entry of a conflist text, validated as the plugin will validate it. */
export function checkConflist(text: string, source: string): NetworkConfig {
  let raw: Record<string, unknown>;
  try {
    raw = parseJson(text) as Record<string, unknown>;
  } catch (e) {
    throw new CniError(Code.DecodeFailure, `${source} is not JSON`, (e as Error).message);
  }
  if (!raw || !Array.isArray(raw.plugins)) throw new CniError(Code.InvalidConfig, `${source} is not a conflist (no "plugins" list)`);
  const entry = (raw.plugins as Record<string, unknown>[]).find((p) => p?.type === 'testcni');
  if (!entry) throw new CniError(Code.InvalidConfig, `${source} has no testcni plugin`);
  return loadConfig({ ...entry, cniVersion: raw.cniVersion, name: raw.name }).config;
}

/** Whether the file at `path` is a conflist with a testcni plugin (ours to remove). */
export function isOurConflist(path: string): boolean {
  try {
    const raw = JSON.parse(readFileSync(path, 'utf8')) as { plugins?: { type?: unknown }[] };
    return Array.isArray(raw.plugins) && raw.plugins.some((p) => p?.type === 'testcni');
  } catch {
    return false;
  }
}

/** Writes the conflist atomically (a runtime reading the dir sees the old file or the new one). */
export function writeConflist(confDir: string, name: string, text: string): string {
  ensureDir(confDir, 0o755);
  const path = join(confDir, name);
  writeFileAtomic(path, text, { mode: 0o644 });
  return path;
}

export function removeConflist(path: string): boolean {
  return removeIfExists(path);
}
