// host-gw's config section: the node bridge (the original plugin's top-level `bridge` key).
import { ifNameField } from '../../config-fields.ts';

export interface HostGwConfig {
  /** the node bridge carrying the block gateway */
  bridge: string;
}

export const DEFAULT_BRIDGE = 'testcni0';

export const schema = {
  bridge: { $ref: '#/$defs/ifName', description: 'the node bridge carrying the block gateway (default testcni0)' },
};

export function parse(raw: Record<string, unknown>): HostGwConfig {
  return { bridge: ifNameField('bridge', raw.bridge) ?? DEFAULT_BRIDGE };
}
