// host-gw (the default): pods on a node bridge, each node routing to the others' blocks
// through their underlay addresses.
import type { ModeDefinition } from '../../mode.ts';
import { schema, parse, type HostGwConfig } from './config.ts';
import { planAdd, resultOf } from './pod.ts';
import { nodePlanner } from './node.ts';

export const hostGw: ModeDefinition<'host-gw', HostGwConfig> = {
  name: 'host-gw',
  summary: 'pods on a node bridge; each node routes to the other nodes\' blocks via their underlay addresses',
  schema,
  addressing: { pool: 'block' },
  parse,
  tools: (config) => (config.ipMasq ? ['iptables'] : []),
  planAdd,
  resultOf,
  node: nodePlanner,
  labUnsupported: null,
};
