// The node agent's HTTP/JSON API on its unix socket, shared by the agent and the plugin.
export const API = {
  allocate: '/v1/allocate', // POST AttachmentKey -> Lease
  release: '/v1/release', // POST AttachmentKey -> { released: string[] }
  find: '/v1/find', // POST AttachmentKey -> { ip: string | null }
  gc: '/v1/gc', // POST { valid: AttachmentKey[] } -> { released: string[] }
  status: '/v1/status', // GET -> AgentStatus
  healthz: '/healthz', // GET -> 200 "ok" | 503
} as const;

/** Error bodies carry the CNI code the plugin should report. */
export interface ApiError {
  code: number;
  msg: string;
  details?: string;
}

export interface AgentStatus {
  ready: boolean;
  reason?: string;
  node: string;
  underlayIp: string;
  block: string | null;
  gateway: string | null;
  etcd: { endpoints: string[]; reachable: boolean; lastCheck: string | null };
  ipam: { used: number; free: number } | null;
  nodes: { name: string; underlayIp: string; block: string }[];
  /** nodes whose registration is gone but whose routes are kept for the grace period */
  leaving: string[];
  /** routes of this node's mode-owned state, as last observed */
  routes: { dst: string; via: string }[];
  lastReconcile: { at: string; ok: boolean; changes: number; generation: number; error?: string } | null;
  /** the last reconcile succeeded for the registry as it is now */
  converged: boolean;
  mode: string;
  registeredAt: string | null;
  /** the registration's lease lapsed and the agent is registering again */
  registrationLapsed: boolean;
  version: string;
}
