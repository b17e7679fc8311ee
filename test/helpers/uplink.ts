// A simulated node with an uplink, for modes whose pods hang off a node device (macvlan):
// `eth0` in the node, its peer on a bridge in a "wire" namespace that plays the node network's
// router (the gateway) and another host on it. Addresses from 198.18.0.0/24.
import type { Scope } from './e2e.ts';
import { inNetns, addNetns, delNetns, type TestNode } from './netns.ts';

export const WIRE = { gateway: '198.18.0.1', node: '198.18.0.11', prefix: 24, subnet: '198.18.0.0/24' } as const;

export interface UplinkNode {
  node: TestNode;
  /** the wire's netns: the gateway, and a host on the node network */
  wire: string;
  /** a macvlan network config on this node; `extra` overrides its keys */
  config(extra?: Record<string, unknown>): Record<string, unknown>;
}

/** The node's eth0 as `ip -d -j link show` has it (promiscuity, MTU). */
export function uplinkLink(node: TestNode): { mtu: number; promiscuity: number; flags: string[] } {
  return (JSON.parse(inNetns(node.name, ['ip', '-d', '-j', 'link', 'show', 'dev', 'eth0']).stdout) as never[])[0]!;
}

export function uplinkNode(scope: Scope, tag = '', mode = 'macvlan'): UplinkNode {
  const node = scope.node(tag);
  const wire = `${scope.prefix}${tag}w`;
  addNetns(wire);
  scope.defer(() => delNetns(wire));
  inNetns(wire, ['ip', '-batch', '-'], {
    input: ['link add br0 type bridge', `addr add ${WIRE.gateway}/${WIRE.prefix} dev br0`, 'link set br0 up',
      `link add up0 type veth peer name eth0 netns ${node.name}`].join('\n') + '\n',
  });
  inNetns(node.name, ['ip', '-batch', '-'], {
    input: ['link set eth0 up', `addr add ${WIRE.node}/${WIRE.prefix} dev eth0`, `route add default via ${WIRE.gateway}`].join('\n') + '\n',
  });
  inNetns(wire, ['ip', 'link', 'set', 'up0', 'master', 'br0', 'up']);
  return {
    node,
    wire,
    config: (extra = {}) => node.config({
      mode,
      subnet: WIRE.subnet,
      ...extra,
      ipam: { rangeStart: '198.18.0.100', rangeEnd: '198.18.0.120', ...((extra.ipam as object | undefined) ?? {}) },
    }),
  };
}
