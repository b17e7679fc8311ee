// Network config on stdin: decode, negotiate the version (first: an unknown version is code 1,
// not 7), then load it (schemas/network-config.ts); the runtime's extras are kept apart.
import { CniError, Code } from '../model/errors.ts';
import type { NetworkConfig } from '../model/config.ts';
import { requireSupported } from './version.ts';
import { loadNetworkConfig } from '../schemas/network-config.ts';
import { MODES, type ModeRegistry } from '../planner/registry.ts';

/** What came on stdin besides the network itself. */
export interface ConfigExtras {
  prevResult: Record<string, unknown> | null;
  validAttachments: { containerID: string; ifname: string }[] | null;
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CniError(Code.DecodeFailure, 'network config is not valid JSON', (e as Error).message);
  }
}

export function loadConfig(raw: unknown, registry: ModeRegistry = MODES): { config: NetworkConfig; extras: ConfigExtras } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CniError(Code.DecodeFailure, 'network config must be a JSON object');
  }
  const obj = raw as Record<string, unknown>;
  if (obj.cniVersion === undefined) {
    throw new CniError(Code.InvalidConfig, 'invalid network config: cniVersion', 'cniVersion: is required');
  }
  const config = loadNetworkConfig(obj, requireSupported(obj.cniVersion), registry);
  const extras: ConfigExtras = {
    prevResult: (obj.prevResult as Record<string, unknown> | undefined) ?? null,
    validAttachments:
      (obj['cni.dev/valid-attachments'] as ConfigExtras['validAttachments'] | undefined) ??
      (obj['cni.dev/attachments'] as ConfigExtras['validAttachments'] | undefined) ??
      null,
  };
  return { config, extras };
}
