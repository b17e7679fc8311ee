// ipvlan's config: `{"ipvlan": {"master": "eth0", "mode": "l2"}}` (the reference plugin's keys
// under the mode's name), the node network in `subnet` (or ipam.subnet) with a range of it in
// ipam. The original plugin's files ({"mode":"ipvlan","subnet":…,"ipam":{"rangeStart":…}}) are
// l2 on the default route's interface.
import type { CommonConfig } from '../../../model/config.ts';
import { parseSection, sectionSchema, type ChildLinkConfig } from '../../child-link.ts';

export const IPVLAN_MODES = ['l2', 'l3', 'l3s'] as const;
export type IpvlanMode = (typeof IPVLAN_MODES)[number];

export type IpvlanConfig = ChildLinkConfig<IpvlanMode>;

export const schema = sectionSchema('ipvlan', IPVLAN_MODES, 'l2');

export function parse(raw: Record<string, unknown>, common: CommonConfig): IpvlanConfig {
  return parseSection('ipvlan', raw, common, 'l2' as IpvlanMode);
}
