// The agent's HTTP/JSON API on a unix socket, with fake handlers, and the plugin's client
// (AgentStore) against it: status codes, the CNI codes they carry, timeouts, socket mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request, createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { apiServer, listenUnix, ApiFailure, type AgentHandlers } from '../../agent/api.ts';
import { AgentMetrics } from '../../agent/metrics.ts';
import { createServer as createNetServer, type Socket } from 'node:net';
import { AgentStore, parseResponse } from '../../ipam/agent-store.ts';
import { API, type AgentStatus } from '../../ipam/agent-protocol.ts';
import { CniError } from '../../model/errors.ts';
import type { AttachmentKey } from '../../model/lease.ts';

const STATUS: AgentStatus = {
  ready: true, node: 'n1', underlayIp: '198.18.0.11', block: '10.244.0.0/24', gateway: '10.244.0.1',
  etcd: { endpoints: ['http://198.18.0.1:2379'], reachable: true, lastCheck: null },
  ipam: { used: 3, free: 250 }, nodes: [], leaving: [], routes: [], lastReconcile: null, converged: false, mode: 'host-gw', registeredAt: null, registrationLapsed: false, version: 'test',
};

/** Fake handlers: an in-memory allocator whose behaviour a test can switch. */
class FakeAgent implements AgentHandlers {
  held = new Map<string, string>();
  calls: string[] = [];
  ready = true;
  failWith: Error | null = null;
  hang = false;
  private next = 2;

  private async gate(what: string): Promise<void> {
    this.calls.push(what);
    if (this.hang) await new Promise(() => {});
    if (this.failWith) throw this.failWith;
  }
  async allocate(k: AttachmentKey) {
    await this.gate('allocate');
    const id = `${k.containerId}/${k.ifName}`;
    if (!this.held.has(id)) this.held.set(id, `10.244.0.${this.next++}`);
    return { address: `${this.held.get(id)}/24`, gateway: '10.244.0.1' };
  }
  async release(k: AttachmentKey) {
    await this.gate('release');
    const id = `${k.containerId}/${k.ifName}`;
    const ip = this.held.get(id);
    this.held.delete(id);
    return ip ? [ip] : [];
  }
  async find(k: AttachmentKey) {
    await this.gate('find');
    return this.held.get(`${k.containerId}/${k.ifName}`) ?? null;
  }
  async gc(valid: AttachmentKey[]) {
    await this.gate('gc');
    const keep = new Set(valid.map((k) => `${k.containerId}/${k.ifName}`));
    const gone = [...this.held].filter(([id]) => !keep.has(id));
    for (const [id] of gone) this.held.delete(id);
    return gone.map(([, ip]) => ip).sort();
  }
  status(): AgentStatus {
    return this.ready ? STATUS : { ...STATUS, ready: false, reason: 'etcd unreachable (test)' };
  }
}

interface Harness {
  agent: FakeAgent;
  socket: string;
  dir: string;
  errors: unknown[];
  metrics: AgentMetrics;
  server: Server;
}

async function harness(t: { after: (fn: () => Promise<void> | void) => void }): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'tcapi-'));
  const socket = join(dir, 'run', 'agent.sock');
  const agent = new FakeAgent();
  const errors: unknown[] = [];
  const metrics = new AgentMetrics();
  const server = apiServer(agent, metrics, (e) => errors.push(e));
  await listenUnix(server, socket);
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  return { agent, socket, dir, errors, metrics, server };
}

/** A raw HTTP call on the socket: status and body as sent. */
function raw(socket: string, method: string, path: string, body?: string): Promise<{ status: number; text: string; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch { /* text */ }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
    });
    req.on('error', reject);
    req.end(body ?? '');
  });
}

const att = { containerId: 'ctr1', ifName: 'eth0' };

test('the socket is a unix socket only its owner can use (0600), in a directory created for it', async (t) => {
  const h = await harness(t);
  const st = statSync(h.socket);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
});

test('listenUnix replaces a stale socket file left by a crashed agent', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcapi-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, 'agent.sock');
  writeFileSync(socket, 'stale');
  const server = apiServer(new FakeAgent(), new AgentMetrics(), () => {});
  await listenUnix(server, socket);
  t.after(() => new Promise((r) => server.close(r)));
  assert.ok(statSync(socket).isSocket());
  assert.equal((await raw(socket, 'GET', API.healthz)).status, 200);
});

test('API: 200 with JSON bodies for each endpoint', async (t) => {
  const h = await harness(t);
  const a = await raw(h.socket, 'POST', API.allocate, JSON.stringify(att));
  assert.deepEqual([a.status, a.json], [200, { address: '10.244.0.2/24', gateway: '10.244.0.1' }]);
  assert.deepEqual((await raw(h.socket, 'POST', API.find, JSON.stringify(att))).json, { ip: '10.244.0.2' });
  assert.deepEqual((await raw(h.socket, 'POST', API.release, JSON.stringify(att))).json, { released: ['10.244.0.2'] });
  assert.deepEqual((await raw(h.socket, 'POST', API.gc, JSON.stringify({ valid: [] }))).json, { released: [] });
  const s = await raw(h.socket, 'GET', API.status);
  assert.deepEqual([s.status, s.json], [200, STATUS]);
  const hz = await raw(h.socket, 'GET', API.healthz);
  assert.deepEqual([hz.status, hz.text], [200, 'ok\n']);
  assert.deepEqual(h.errors, []);
});

test('API: failures carry the HTTP status and the CNI code the plugin reports', async (t) => {
  const h = await harness(t);
  h.agent.failWith = new ApiFailure(503, { code: 11, msg: 'node agent not ready', details: 'etcd unreachable' });
  let r = await raw(h.socket, 'POST', API.allocate, JSON.stringify(att));
  assert.deepEqual([r.status, r.json], [503, { code: 11, msg: 'node agent not ready', details: 'etcd unreachable' }]);
  h.agent.failWith = new ApiFailure(409, { code: 100, msg: 'address pool exhausted' });
  r = await raw(h.socket, 'POST', API.allocate, JSON.stringify(att));
  assert.deepEqual([r.status, r.json], [409, { code: 100, msg: 'address pool exhausted' }]);
  // An unexpected error: 500, code 999, reported to the agent's log, no stack to the client.
  h.agent.failWith = new Error('disk on fire');
  r = await raw(h.socket, 'POST', API.release, JSON.stringify(att));
  assert.deepEqual([r.status, r.json], [500, { code: 999, msg: 'internal error', details: 'disk on fire' }]);
  assert.equal(h.errors.length, 1);
  h.agent.failWith = null;
  h.agent.ready = false;
  const hz = await raw(h.socket, 'GET', API.healthz);
  assert.deepEqual([hz.status, hz.text], [503, 'not ready: etcd unreachable (test)\n']);
});

test('API: bad requests are refused before any handler runs', async (t) => {
  const h = await harness(t);
  const cases: [string, string, string | undefined, number, number][] = [
    ['POST', API.allocate, '{not json', 400, 6],
    ['POST', API.allocate, '{}', 400, 7],
    ['POST', API.allocate, JSON.stringify({ containerId: 'c1' }), 400, 7],
    ['POST', API.allocate, JSON.stringify({ containerId: '../x', ifName: 'eth0' }), 400, 7],
    ['POST', API.allocate, JSON.stringify({ containerId: 'c1', ifName: 'a/b' }), 400, 7],
    ['POST', API.allocate, JSON.stringify({ containerId: 'c1', ifName: 7 }), 400, 7],
    ['POST', API.release, undefined, 400, 7],
    ['POST', API.find, 'null', 400, 7],
    ['POST', API.gc, JSON.stringify({ valid: 'all' }), 400, 7],
    ['POST', API.gc, JSON.stringify({ valid: [{ containerId: 'c1' }] }), 400, 7],
    ['POST', API.allocate, 'x'.repeat((1 << 20) + 10), 413, 7],
  ];
  for (const [method, path, body, status, code] of cases) {
    const r = await raw(h.socket, method, path, body);
    assert.equal(r.status, status, `${method} ${path} ${String(body).slice(0, 40)}: ${r.text}`);
    assert.equal((r.json as { code: number }).code, code, `${method} ${path} ${String(body).slice(0, 40)}`);
  }
  for (const [method, path] of [['GET', API.allocate], ['POST', API.status], ['GET', '/v2/allocate'], ['DELETE', API.release]]) {
    const r = await raw(h.socket, method!, path!);
    assert.equal(r.status, 404, `${method} ${path}`);
    assert.match((r.json as { msg: string }).msg, /no such endpoint/);
  }
  assert.deepEqual(h.agent.calls, [], 'no handler was called');
  // Requests are counted by path and status.
  const text = await h.metrics.registry.metrics();
  assert.match(text, /testcni_api_requests_total\{path="\/v1\/allocate",status="400"\} 6/);
  // Paths a client makes up share one label (the metric's size stays bounded).
  for (let i = 0; i < 5; i++) await raw(h.socket, 'GET', `/made-up/${i}`);
  const after = await h.metrics.registry.metrics();
  assert.match(after, /testcni_api_requests_total\{path="other",status="404"\} 6/);
  assert.doesNotMatch(after, /made-up/);
});

test('AgentStore: allocate, find, release, gc and status through the socket', async (t) => {
  const h = await harness(t);
  const store = new AgentStore(h.socket);
  assert.deepEqual(await store.allocate(att), { address: '10.244.0.2/24', gateway: '10.244.0.1' });
  assert.deepEqual(await store.allocate(att), { address: '10.244.0.2/24', gateway: '10.244.0.1' }, 'idempotent per attachment');
  assert.deepEqual(await store.allocate({ containerId: 'ctr2', ifName: 'eth0' }), { address: '10.244.0.3/24', gateway: '10.244.0.1' });
  assert.equal(await store.find(att), '10.244.0.2');
  assert.equal(await store.find({ containerId: 'nope', ifName: 'eth0' }), null);
  assert.deepEqual(await store.release(att), ['10.244.0.2']);
  assert.deepEqual(await store.release(att), []);
  assert.deepEqual(await store.gc([], 30_000), [], 'an operator GC with a grace period leaves the agent alone');
  assert.ok(!h.agent.calls.includes('gc'));
  assert.deepEqual(await store.gc([]), ['10.244.0.3']);
  assert.deepEqual(await store.status(), { ready: true, used: 3, free: 250 });
  assert.deepEqual(await store.agentStatus(), STATUS);
  h.agent.ready = false;
  assert.deepEqual(await store.status(), { ready: false, used: 3, free: 250, reason: 'node agent not ready: etcd unreachable (test)' });
  await assert.rejects(store.peek(), (e: CniError) => e instanceof CniError && e.code === 104);
});

test('AgentStore: the agent\'s CNI code comes through: 503 -> 11, 409 -> 100, 400 -> 7, 500 -> 999', async (t) => {
  const h = await harness(t);
  const store = new AgentStore(h.socket);
  const expectCode = (code: number, msg: RegExp) => (e: unknown) => e instanceof CniError && e.code === code && msg.test(e.message);
  h.agent.failWith = new ApiFailure(503, { code: 11, msg: 'allocate: datastore unavailable', details: 'timed out' });
  await assert.rejects(store.allocate(att), expectCode(11, /datastore unavailable/));
  await assert.rejects(store.release(att), expectCode(11, /datastore unavailable/));
  h.agent.failWith = new ApiFailure(409, { code: 100, msg: 'address pool exhausted' });
  await assert.rejects(store.allocate(att), expectCode(100, /exhausted/));
  h.agent.failWith = new Error('bug');
  await assert.rejects(store.find(att), expectCode(999, /internal error/));
  h.agent.failWith = null;
  await assert.rejects(store.allocate({ containerId: '-bad', ifName: 'eth0' }), expectCode(7, /containerId and ifName are required/));
});

test('AgentStore: no agent at the socket -> code 11 at once; STATUS says why', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcapi-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'agent.sock');
  const store = new AgentStore(missing);
  const started = performance.now();
  await assert.rejects(store.allocate(att), (e: unknown) => e instanceof CniError && e.code === 11 && e.details.includes(missing) && e.details.includes('ENOENT'));
  assert.ok(performance.now() - started < 1000, 'fails fast');
  const s = await store.status();
  assert.equal(s.ready, false);
  assert.match(s.reason!, /node agent not reachable: .*ENOENT/);
  // A socket file nobody listens on (the agent crashed): refused, also code 11.
  const dead = createServer();
  const deadPath = join(dir, 'dead.sock');
  await new Promise<void>((r) => dead.listen(deadPath, r));
  await new Promise((r) => dead.close(r));
  writeFileSync(deadPath, ''); // what is left when the listener is gone without unlinking: not a socket at all
  await assert.rejects(new AgentStore(deadPath).allocate(att), (e: unknown) => e instanceof CniError && e.code === 11);
});

test('AgentStore: an agent that does not answer -> code 11 after the client timeout', async (t) => {
  const h = await harness(t);
  h.agent.hang = true;
  const store = new AgentStore(h.socket, 300);
  const started = performance.now();
  await assert.rejects(store.allocate(att), (e: unknown) => e instanceof CniError && e.code === 11 && /no answer within 300 ms/.test(e.details));
  const took = performance.now() - started;
  assert.ok(took >= 280 && took < 2000, `${took} ms`);
});

test('AgentStore: a non-JSON answer is an I/O failure (code 5), not a crash', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcapi-'));
  const socket = join(dir, 'agent.sock');
  const server = createServer((_req, res) => {
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end('<html>bad gateway</html>');
  });
  await new Promise<void>((r) => server.listen(socket, r));
  t.after(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  await assert.rejects(new AgentStore(socket).allocate(att), (e: unknown) => e instanceof CniError && e.code === 5 && /502/.test(e.details));
  assert.ok(existsSync(socket));
});

test('parseResponse: complete by Content-Length, by the last chunk, or by the end of the connection', () => {
  const b = (text: string) => Buffer.from(text, 'latin1');
  assert.deepEqual(parseResponse(b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}'), false), { status: 200, body: '{}' });
  assert.equal(parseResponse(b('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{"a"'), false), null, 'a body still arriving');
  assert.equal(parseResponse(b('HTTP/1.1 200 OK\r\nContent-Len'), false), null, 'headers still arriving');
  const chunked = 'HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"co\r\nd;ext=1\r\nde":11,"x":1}\r\n0\r\n\r\n';
  assert.deepEqual(parseResponse(b(chunked), false), { status: 503, body: '{"code":11,"x":1}' });
  assert.equal(parseResponse(b(chunked.slice(0, -7)), false), null, 'before the last chunk');
  assert.equal(parseResponse(b('HTTP/1.1 200 OK\r\n\r\n{"ip":null}'), false), null, 'no length: wait for the end');
  assert.deepEqual(parseResponse(b('HTTP/1.1 200 OK\r\n\r\n{"ip":null}'), true), { status: 200, body: '{"ip":null}' });
  assert.equal(parseResponse(b('SSH-2.0-OpenSSH\r\n\r\n'), true), null, 'not HTTP');
  // multi-byte UTF-8 split across chunks is joined before decoding
  const euro = Buffer.from('{"msg":"\u20ac"}', 'utf8');
  const raw = Buffer.concat([b(`HTTP/1.1 200 OK\r\nContent-Length: ${euro.length}\r\n\r\n`), euro]);
  assert.deepEqual(parseResponse(raw, false), { status: 200, body: '{"msg":"\u20ac"}' });
});

test('AgentStore: an answer is complete without the server closing (keep-alive, chunked, split writes)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcapi-'));
  const socket = join(dir, 'agent.sock');
  const open = new Set<Socket>();
  const server = createNetServer((c) => {
    open.add(c);
    c.once('data', () => {
      // Chunked, in pieces, and the connection left open: only the last chunk ends the answer.
      c.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n');
      setTimeout(() => c.write('9\r\n{"ip":"10\r\n'), 20);
      setTimeout(() => c.write('b\r\n.244.0.42"}\r\n0\r\n\r\n'), 40);
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
  t.after(async () => {
    for (const c of open) c.destroy();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  const started = performance.now();
  assert.equal(await new AgentStore(socket, 5000).find(att), '10.244.0.42');
  assert.ok(performance.now() - started < 2000, 'did not wait for the connection to close');
});
