// Picks the IPAM store a network config asks for.
import type { NetworkConfig } from '../cni/config.ts';
import { CniError, Code } from '../cni/errors.ts';
import { FileStore } from './file-store.ts';
import { poolOf } from './pool.ts';
import type { IpamStore } from './store.ts';

export function openIpam(config: NetworkConfig): IpamStore {
  if (config.ipam.type === 'file') return new FileStore(config.ipam.dataDir, config.name, poolOf(config.ipam));
  throw new CniError(Code.ModeUnavailable, 'cluster IPAM is not available in this build',
    'ipam.type "cluster" needs the node agent; use ipam.type "file" (the default)');
}
