// Cluster IPAM from the plugin's side: a thin client of the node agent's unix-socket API.
// The plugin holds no datastore credentials; an agent that is down or not ready is
// "try again later" (code 11), and nothing has been changed on the node at that point.
import type { IncomingMessage } from 'node:http';
import { CniError, Code } from '../cni/errors.ts';
import { API, type AgentStatus, type ApiError } from './agent-protocol.ts';
import type { AttachmentKey, IpamStatus, IpamStore } from './store.ts';
import type { Lease } from '../planner/types.ts';

export const AGENT_TIMEOUT_MS = 10_000;

export class AgentStore implements IpamStore {
  constructor(
    private readonly socket: string,
    private readonly timeoutMs = AGENT_TIMEOUT_MS,
  ) {}

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    // node:http is loaded here, not at start: file-IPAM calls never pay for it.
    const { request } = await import('node:http');
    const payload = body === undefined ? '' : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const unreachable = (why: string) =>
        new CniError(Code.TryAgainLater, 'node agent not reachable', `${this.socket}: ${why}`);
      const req = request(
        { socketPath: this.socket, path, method, timeout: this.timeoutMs, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              return reject(new CniError(Code.IoFailure, 'node agent sent a non-JSON answer', `${res.statusCode}: ${text.slice(0, 200)}`));
            }
            if (res.statusCode === 200) return resolve(json as T);
            const err = json as ApiError;
            const code = typeof err.code === 'number' ? err.code : Code.Internal;
            reject(new CniError(code as CniError['code'], err.msg ?? `agent answered ${res.statusCode}`, err.details ?? ''));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => reject(unreachable(e.code ?? e.message)));
      req.end(payload);
    });
  }

  allocate(key: AttachmentKey): Promise<Lease> {
    return this.call<Lease>('POST', API.allocate, key);
  }

  async find(key: AttachmentKey): Promise<string | null> {
    return (await this.call<{ ip: string | null }>('POST', API.find, key)).ip;
  }

  async release(key: AttachmentKey): Promise<string[]> {
    return (await this.call<{ released: string[] }>('POST', API.release, key)).released;
  }

  /** With a grace period (an operator's GC that may overlap ADDs) the agent's reservations are
   *  left alone: only the runtime's GC, which never overlaps an ADD, releases them. */
  async gc(valid: AttachmentKey[], graceMs = 0): Promise<string[]> {
    if (graceMs > 0) return [];
    return (await this.call<{ released: string[] }>('POST', API.gc, { valid })).released;
  }

  peek(): Promise<Lease> {
    return Promise.reject(new CniError(Code.ModeUnavailable, 'cluster IPAM cannot preview an address'));
  }

  async status(): Promise<IpamStatus> {
    try {
      const s = await this.call<AgentStatus>('GET', API.status);
      return { ready: s.ready, used: s.ipam?.used ?? 0, free: s.ipam?.free ?? 0, ...(s.ready ? {} : { reason: `node agent not ready: ${s.reason ?? ''}` }) };
    } catch (e) {
      return { ready: false, used: 0, free: 0, reason: (e as Error).message + ((e as CniError).details ? `: ${(e as CniError).details}` : '') };
    }
  }

  agentStatus(): Promise<AgentStatus> {
    return this.call<AgentStatus>('GET', API.status);
  }
}
