// Writes the node's CNI config once the agent is ready, so the runtime never calls the plugin
// before IPAM can answer (the runtime takes the first file in its conf dir).
import { join } from 'node:path';
import { writeFileAtomic, ensureDir } from '../lib/atomic-file.ts';
import type { AgentConfig } from './config.ts';

export function cniConfigFor(cfg: AgentConfig): Record<string, unknown> {
  return { cniVersion: '1.1.0', name: cfg.network, plugins: [cfg.pluginEntry] };
}

export function writeCniConfig(cfg: AgentConfig): void {
  ensureDir(cfg.cniConfDir!, 0o755);
  writeFileAtomic(join(cfg.cniConfDir!, cfg.cniConfName), JSON.stringify(cniConfigFor(cfg), null, 2) + '\n', { mode: 0o644 });
}
