// macvlan's config: `{"macvlan": {"master": "eth0", "mode": "bridge"}}` (the reference plugin's
// keys under the mode's name), the node network in `subnet` (or ipam.subnet) with a range of it
// in ipam, and the MAC a runtime may ask for (runtimeConfig.mac, args.cni.mac; CNI_ARGS MAC is
// read at planning time).
import type { CommonConfig } from '../../../model/config.ts';
import { badField } from '../../config-fields.ts';
import { parseSection, sectionSchema, type ChildLinkConfig } from '../../child-link.ts';

export const MACVLAN_MODES = ['bridge', 'private', 'vepa', 'passthru'] as const;
export type MacvlanMode = (typeof MACVLAN_MODES)[number];

export interface MacvlanConfig extends ChildLinkConfig<MacvlanMode> {
  /** the MAC the runtime asked for (runtimeConfig.mac, then args.cni.mac), or null */
  mac: string | null;
}

export const schema = sectionSchema('macvlan', MACVLAN_MODES, 'bridge');

const UNICAST_MAC = /^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$/;

/** A MAC a runtime or operator gave: six colon-separated octets, unicast; lower-cased. */
export function macField(field: string, value: unknown): string {
  const mac = typeof value === 'string' ? value.toLowerCase() : '';
  if (!UNICAST_MAC.test(mac) || mac === '00:00:00:00:00:00') badField(field, `${JSON.stringify(value)} is not a unicast MAC address (aa:bb:cc:dd:ee:ff)`);
  return mac;
}

export function parse(raw: Record<string, unknown>, common: CommonConfig): MacvlanConfig {
  const section = parseSection('macvlan', raw, common, 'bridge' as MacvlanMode);
  const fromRuntime = (raw.runtimeConfig as { mac?: unknown } | undefined)?.mac;
  const fromArgs = (raw.args as { cni?: { mac?: unknown } } | undefined)?.cni?.mac;
  const field = fromRuntime !== undefined ? 'runtimeConfig.mac' : fromArgs !== undefined ? 'args.cni.mac' : null;
  const mac = field === null ? null : macField(field, fromRuntime ?? fromArgs);
  if (field !== null && section.mode === 'passthru') badField(field, 'a passthru child (macvlan.mode) takes its master\'s MAC: no other can be asked for');
  return { ...section, mac };
}
