// What a node publishes in the cluster registry (etcd, through the agent).
export interface NodeRecord {
  name: string;
  /** the node's address on the underlay network */
  underlayIp: string;
  /** the pod block the node owns (CIDR) */
  block: string;
}
