// The agent's API server: HTTP/JSON on a unix socket (0600) for the plugin, and optionally
// /metrics, /healthz (ready) and /livez (alive) on a TCP address for Prometheus and probes.
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { API, type AgentStatus, type ApiError } from '../ipam/agent-protocol.ts';
import type { AttachmentKey } from '../model/lease.ts';
import type { Lease } from '../model/lease.ts';
import { removeIfExists } from '../lib/atomic-file.ts';
import { containerIdProblem, ifNameProblem } from '../model/attachment.ts';
import type { AgentMetrics } from './metrics.ts';

export interface AgentHandlers {
  allocate(key: AttachmentKey): Promise<Lease>;
  release(key: AttachmentKey): Promise<string[]>;
  find(key: AttachmentKey): Promise<string | null>;
  gc(valid: AttachmentKey[]): Promise<string[]>;
  status(): AgentStatus;
  /** the status with what takes a process to learn (the node daemons' peer sessions) */
  detailedStatus?(): Promise<AgentStatus>;
}

/** An error with the HTTP status and CNI code the API answers with. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
  ) {
    super(body.msg);
  }
}

const MAX_BODY = 1 << 20;

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) reject(new ApiFailure(413, { code: 7, msg: 'request body too large' }));
      else chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {});
      } catch {
        reject(new ApiFailure(400, { code: 6, msg: 'request body is not JSON' }));
      }
    });
    req.on('error', reject);
  });
}

const KNOWN_PATHS = new Set<string>(Object.values(API));

/** The same rules as the plugin's for CNI_CONTAINERID and CNI_IFNAME (model/attachment.ts):
 *  the agent stores these in etcd keys and hands them back to the plugin. */
function attachment(v: unknown): AttachmentKey {
  const o = v as Record<string, unknown> | null;
  const containerId = o?.containerId;
  const ifName = o?.ifName;
  if (typeof containerId !== 'string' || typeof ifName !== 'string') {
    throw new ApiFailure(400, { code: 7, msg: 'containerId and ifName are required' });
  }
  const problem = containerIdProblem(containerId) ?? ifNameProblem(ifName);
  if (problem) {
    const field = containerIdProblem(containerId) ? 'containerId' : 'ifName';
    throw new ApiFailure(400, { code: 7, msg: `invalid ${field}`, details: `${field} ${problem}` });
  }
  return { containerId, ifName };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function apiServer(h: AgentHandlers, metrics: AgentMetrics, onError: (e: unknown) => void): Server {
  return createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    let status = 200;
    try {
      let body: unknown;
      if (req.method === 'GET' && path === API.status) body = h.detailedStatus ? await h.detailedStatus() : h.status();
      else if (req.method === 'GET' && path === API.healthz) {
        const s = h.status();
        status = s.ready ? 200 : 503;
        body = s.ready ? 'ok\n' : `not ready: ${s.reason ?? ''}\n`;
      } else if (req.method === 'POST' && path === API.allocate) body = await h.allocate(attachment(await readBody(req)));
      else if (req.method === 'POST' && path === API.release) body = { released: await h.release(attachment(await readBody(req))) };
      else if (req.method === 'POST' && path === API.find) body = { ip: await h.find(attachment(await readBody(req))) };
      else if (req.method === 'POST' && path === API.gc) {
        const valid = (await readBody(req)) as { valid?: unknown };
        if (!Array.isArray(valid.valid)) throw new ApiFailure(400, { code: 7, msg: 'valid must be a list of attachments' });
        body = { released: await h.gc(valid.valid.map(attachment)) };
      } else throw new ApiFailure(404, { code: 4, msg: `no such endpoint: ${req.method} ${path}` });
      send(res, status, body);
    } catch (e) {
      const f = e instanceof ApiFailure ? e : new ApiFailure(500, { code: 999, msg: 'internal error', details: (e as Error)?.message });
      if (!(e instanceof ApiFailure)) onError(e);
      status = f.status;
      send(res, f.status, f.body);
    } finally {
      // Unknown paths share one label: a label per path a client makes up would grow without bound.
      metrics.apiRequests.inc({ path: KNOWN_PATHS.has(path) ? path : 'other', status: String(status) });
    }
  });
}

/** Listens on a unix socket that only root can use, from the moment it exists: bind(2) creates
 *  it with the process umask, so the umask is 0177 around the (synchronous) bind; a chmod
 *  afterwards would leave a window in which anyone could connect. A stale socket is replaced. */
export function listenUnix(server: Server, path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  removeIfExists(path);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const umask = process.umask(0o177);
    try {
      server.listen(path, () => {
        chmodSync(path, 0o600); // the mode whatever bind made of it
        resolve();
      });
    } finally {
      process.umask(umask);
    }
  });
}

export function metricsServer(metrics: AgentMetrics, ready: () => boolean): Server {
  return createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      const text = await metrics.text();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(text);
    } else if (path === '/healthz') {
      send(res, ready() ? 200 : 503, ready() ? 'ok\n' : 'not ready\n');
    } else if (path === '/livez') {
      // Liveness: the process answers. Not readiness: while etcd is away the agent is not ready,
      // and a restart would not bring etcd back.
      send(res, 200, 'alive\n');
    } else send(res, 404, 'not found\n');
  });
}
