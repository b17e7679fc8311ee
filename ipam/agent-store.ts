// Cluster IPAM from the plugin's side: a thin client of the node agent's unix-socket API.
// The plugin holds no datastore credentials; an agent that is down or not ready is
// "try again later" (code 11), and nothing has been changed on the node at that point.
import { CniError, Code } from '../model/errors.ts';
import { API, type AgentStatus, type ApiError } from './agent-protocol.ts';
import type { AttachmentKey, IpamStatus, IpamStore } from './store.ts';
import type { Lease } from '../model/lease.ts';

export const AGENT_TIMEOUT_MS = 10_000;

export class AgentStore implements IpamStore {
  constructor(
    private readonly socket: string,
    private readonly timeoutMs = AGENT_TIMEOUT_MS,
  ) {}

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    // HTTP/1.1 by hand over node:net, not node:http: a plugin run makes one request, and
    // node:http's first request in a process costs ~15-20 ms more than a plain socket (measured
    // on the dev machine; see bench/agent.mjs), a third of an ADD.
    const { createConnection } = await import('node:net');
    const payload = body === undefined ? '' : JSON.stringify(body);
    const request = `${method} ${path} HTTP/1.1\r\nHost: testcni-agent\r\nConnection: close\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`;
    return new Promise<T>((resolve, reject) => {
      const unreachable = (why: string) =>
        new CniError(Code.TryAgainLater, 'node agent not reachable', `${this.socket}: ${why}`);
      const chunks: Buffer[] = [];
      const sock = createConnection(this.socket);
      const timer = setTimeout(() => sock.destroy(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      let done = false;
      const answer = (ended: boolean) => {
        const res = done ? null : parseResponse(Buffer.concat(chunks), ended);
        if (!res) {
          if (ended && !done) {
            done = true;
            clearTimeout(timer);
            reject(unreachable('connection closed without an answer'));
          }
          return;
        }
        done = true;
        clearTimeout(timer);
        sock.destroy();
        let json: unknown;
        try {
          json = JSON.parse(res.body);
        } catch {
          return reject(new CniError(Code.IoFailure, 'node agent sent a non-JSON answer', `${res.status}: ${res.body.slice(0, 200)}`));
        }
        if (res.status === 200) return resolve(json as T);
        const err = json as ApiError;
        const code = typeof err.code === 'number' ? err.code : Code.Internal;
        reject(new CniError(code as CniError['code'], err.msg ?? `agent answered ${res.status}`, err.details ?? ''));
      };
      sock.on('data', (c: Buffer) => {
        chunks.push(c);
        answer(false);
      });
      sock.on('end', () => answer(true));
      sock.on('error', (e: NodeJS.ErrnoException) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        reject(unreachable(e.code ?? e.message));
      });
      sock.write(request);
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

/**
 * Status and body of an HTTP/1.1 response in `raw`, or null while it is incomplete: complete
 * once Content-Length bytes or the last chunk have arrived, or, without either, when the
 * connection has ended.
 */
export function parseResponse(raw: Buffer, ended: boolean): { status: number; body: string } | null {
  const split = raw.indexOf('\r\n\r\n');
  if (split < 0) return null;
  const head = raw.subarray(0, split).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1]);
  if (!Number.isInteger(status)) return null;
  const header = (name: string) => head.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim().toLowerCase();
  const rest = raw.subarray(split + 4);
  if (header('transfer-encoding') === 'chunked') {
    const parts: Buffer[] = [];
    for (let at = 0; ;) {
      const eol = rest.indexOf('\r\n', at);
      if (eol < 0) return null;
      const size = parseInt(rest.subarray(at, eol).toString('latin1'), 16);
      if (!Number.isInteger(size) || size < 0) return null;
      if (size === 0) return { status, body: Buffer.concat(parts).toString('utf8') };
      if (rest.length < eol + 2 + size) return null;
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
  }
  const length = Number(header('content-length') ?? NaN);
  if (Number.isInteger(length) && length >= 0) return rest.length >= length ? { status, body: rest.subarray(0, length).toString('utf8') } : null;
  return ended ? { status, body: rest.toString('utf8') } : null;
}
