// Names and MAC addresses derived from the attachment, so DEL can recompute what ADD made.
import { fnv1a64 } from '../lib/hash.ts';

export const HOST_VETH_PREFIX = 'tc';

/** Host side of a pod veth: prefix + 11 hex digits of a hash of containerId/ifName, 13 chars. */
export function hostVethName(containerId: string, ifName: string): string {
  return HOST_VETH_PREFIX + fnv1a64(`${containerId}/${ifName}`).slice(0, 11);
}

/** A locally administered unicast MAC derived from a seed. */
export function derivedMac(seed: string): string {
  const hex = fnv1a64(`mac:${seed}`).slice(0, 12);
  const first = ((parseInt(hex.slice(0, 2), 16) & 0xfc) | 0x02).toString(16).padStart(2, '0');
  return [first, ...(hex.slice(2).match(/../g) as string[])].join(':');
}

export function podMac(containerId: string, ifName: string): string {
  return derivedMac(`pod/${containerId}/${ifName}`);
}

export function hostVethMac(containerId: string, ifName: string): string {
  return derivedMac(`host/${containerId}/${ifName}`);
}

/** Fixed bridge MAC: otherwise a bridge takes its lowest port's MAC, which changes as pods come and go. */
export function bridgeMac(bridge: string, gatewayCidr: string): string {
  return derivedMac(`bridge/${bridge}/${gatewayCidr}`);
}
