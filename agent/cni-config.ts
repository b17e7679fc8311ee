// Writes the node's CNI config once the agent is ready, so the runtime never calls the plugin
// before IPAM can answer (the runtime takes the first file in its conf dir). Only with
// --cni-conf-dir (the lab); a DaemonSet leaves this to `testcni install` (install/conflist.ts
// owns the file either way).
import { conflistFor, conflistText, writeConflist } from '../install/conflist.ts';
import type { AgentConfig } from './config.ts';

export function cniConfigFor(cfg: AgentConfig): Record<string, unknown> {
  return conflistFor({ network: cfg.network, entry: cfg.pluginEntry });
}

export function writeCniConfig(cfg: AgentConfig): void {
  writeConflist(cfg.cniConfDir!, cfg.cniConfName, conflistText(cniConfigFor(cfg)));
}
