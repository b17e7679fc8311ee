// Picks the IPAM store a network config asks for.
import type { NetworkConfig } from '../model/config.ts';
import { FileStore } from './file-store.ts';
import { AgentStore } from './agent-store.ts';
import { poolOf } from './pool.ts';
import type { IpamStore } from './store.ts';

export function openIpam(config: NetworkConfig): IpamStore {
  if (config.ipam.type === 'cluster') return new AgentStore(config.ipam.agentSocket);
  return new FileStore(config.ipam.dataDir, config.name, poolOf(config.ipam));
}
