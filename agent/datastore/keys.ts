// The etcd key layout, in one place. Every key is under the configured prefix (default /testcni):
//
//   <prefix>/nodes/<node>                      node registration (JSON NodeRecord), under the
//                                              node's lease: it expires when the agent is gone
//   <prefix>/blocks/<a.b.c.d>-<len>            block affinity {"node": "<node>"}, created if absent
//   <prefix>/ips/<a.b.c.d>                     reservation {"containerId","ifName","node"},
//                                              created if absent, together with its handle
//   <prefix>/handles/<containerId>/<ifName>    "<a.b.c.d>": the attachment's address
//
// containerId matches [a-zA-Z0-9][a-zA-Z0-9_.-]* and ifName has no "/", so both are safe path parts.
import type { AttachmentKey } from '../../model/lease.ts';

export class Keys {
  constructor(readonly prefix: string) {}

  nodes(): string {
    return `${this.prefix}/nodes/`;
  }
  node(name: string): string {
    return `${this.nodes()}${name}`;
  }
  blocks(): string {
    return `${this.prefix}/blocks/`;
  }
  block(cidr: string): string {
    return `${this.blocks()}${cidr.replace('/', '-')}`;
  }
  blockCidr(key: string): string {
    return key.slice(this.blocks().length).replace(/-(\d+)$/, '/$1');
  }
  ips(): string {
    return `${this.prefix}/ips/`;
  }
  ip(addr: string): string {
    return `${this.ips()}${addr}`;
  }
  handle(k: AttachmentKey): string {
    return `${this.prefix}/handles/${k.containerId}/${k.ifName}`;
  }
}

export interface IpRecord extends AttachmentKey {
  node: string;
}
