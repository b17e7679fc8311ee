#!/usr/bin/env node
// Figures of the node agent and cluster IPAM (issue 3), on a throwaway cluster of network
// namespaces: an underlay bridge netns with etcd on 198.18.0.1, node netns wired to it, one real
// agent (`node dist/testcni.cjs agent`) per node. Prints figures and informational targets;
// always exits 0 once it has measured (2: cannot run here). Removes everything it made.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, openSync, closeSync, readFileSync, copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, cpus, release, loadavg } from 'node:os';
import { register } from 'tsx/esm/api';
import { ROOT, PLUGIN, TOOL_PATH, which, liveChildren, timedRun, summary, percentile, fmt, table, parseArgs, fail, roundNumbers } from './lib.mjs';

const USAGE = `usage: node bench/agent.mjs [--allocations N] [--clients C] [--iterations N] [--join-runs R] [--plan-runs R] [--json]   (as root)
  --allocations N  allocations through the agent API in the throughput run (default 2000)
  --clients C      concurrent API clients in the throughput run (default 8)
  --iterations N   sequential ADD+DEL pairs per IPAM kind in the cluster-vs-file comparison (default 30)
  --join-runs R    node joins (and leaves) measured per cluster size (default 5)
  --plan-runs R    timed compiles of the 1000-node plan per case (default 50)
  --json           print the figures as one JSON document instead of tables`;
const opts = parseArgs(process.argv.slice(2), {
  allocations: { default: 2000, min: 10, max: 3500 }, // the throughput node's block is a /20: 4093 addresses
  clients: { default: 8, min: 1, max: 64 },
  iterations: { default: 30, min: 1, max: 200 },
  'join-runs': { default: 5, min: 1, max: 50 }, // fake nodes get 198.18.0.100-219
  'plan-runs': { default: 50, min: 5, max: 1000 },
  json: { type: 'flag', default: false },
}, USAGE);

const TARGET = { allocsPerSec: 500, clusterOverFileMs: 10, joinMs: 1000, planMs: 50 };
const PROTO = 151;
const UNDERLAY_GW = '198.18.0.1';
const ETCD_PORT = 2379;
const WARMUP_ALLOCS = 50;
const WARMUP_PAIRS = 3;

// ---- preconditions (exit 2) ----
if (process.getuid?.() !== 0) fail('agent bench: needs root (it creates network namespaces); run it as root');
const IP = which('ip');
const NSENTER = which('nsenter');
const ETCDCTL = which('etcdctl');
if (!IP || !NSENTER) fail('agent bench: needs ip (iproute2) and nsenter (util-linux)');
if (!existsSync(PLUGIN) || !existsSync(join(ROOT, 'dist', 'agent.cjs'))) fail('agent bench: dist/testcni.cjs and dist/agent.cjs are missing: run npm run build first');

// The project's own TypeScript modules (the lab's etcd, the node planner, the plugin's agent client).
register();
const { startEtcd, stopPid, etcdAvailable } = await import('../lab/etcd.ts');
const { desiredRoutes, routeSteps, parseRoutes } = await import('../planner/node.ts');
const { AgentStore } = await import('../ipam/agent-store.ts');
const missingEtcd = etcdAvailable();
if (missingEtcd) fail(`agent bench: ${missingEtcd}`);

const progress = (msg) => process.stderr.write(`agent bench: ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

// ---- resources this run creates, removed at the end whatever happens ----
// "tca-" + 4 base36 characters: apart from the tests' uniquePrefix and cni-latency's "tcb-".
const prefix = `tca-${(process.pid % 1296).toString(36).padStart(2, '0')}${Math.floor(Math.random() * 1296).toString(36).padStart(2, '0')}`;
const owned = { netns: [], agents: new Map(), etcdPid: null, dir: mkdtempSync(join(tmpdir(), `${prefix}-`)) };
const UNDERLAY = `${prefix}u`;
let cleanedUp = false;

const netnsPath = (name) => `/var/run/netns/${name}`;

function ip(args, { allowFail = false } = {}) {
  const r = spawnSync(IP, args, { encoding: 'utf8' });
  if (r.status !== 0 && !allowFail) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Synchronous last-resort cleanup (also on Ctrl-C): kill what we started, delete our netns. */
function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const child of liveChildren) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (const a of owned.agents.values()) {
    try { process.kill(a.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  if (owned.etcdPid) {
    try { process.kill(owned.etcdPid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (const ns of [...owned.netns].reverse()) {
    // Whatever still runs inside a namespace this run created is this run's (e.g. an etcd whose
    // start failed half-way): stop it before the namespace goes.
    for (const pid of ip(['netns', 'pids', ns], { allowFail: true }).split('\n').filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
    ip(['netns', 'del', ns], { allowFail: true });
  }
  rmSync(owned.dir, { recursive: true, force: true });
  const left = ip(['netns', 'list'], { allowFail: true }).split('\n').filter((l) => l.startsWith(prefix));
  if (left.length > 0) process.stderr.write(`agent bench: could not remove netns: ${left.join(', ')}\n`);
}

process.on('exit', cleanup);
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(sig, () => {
    process.stderr.write(`agent bench: ${sig}: cleaning up\n`);
    cleanup();
    process.exit(code);
  });
}

// ---- the cluster: underlay bridge, nodes, etcd, agents ----

function addNetns(name) {
  owned.netns.push(name);
  ip(['netns', 'add', name]);
  ip(['-n', name, 'link', 'set', 'lo', 'up']);
}

function makeUnderlay() {
  addNetns(UNDERLAY);
  ip(['-n', UNDERLAY, 'link', 'add', 'br0', 'type', 'bridge']);
  ip(['-n', UNDERLAY, 'addr', 'add', `${UNDERLAY_GW}/24`, 'dev', 'br0']);
  ip(['-n', UNDERLAY, 'link', 'set', 'br0', 'up']);
}

/** Node i: its own netns, eth0 = 198.18.0.(10+i)/24 on the underlay bridge. */
function makeNode(i) {
  const name = `${prefix}n${i}`;
  addNetns(name);
  ip(['-n', name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `v${i}`, 'netns', UNDERLAY]);
  ip(['-n', name, 'addr', 'add', `198.18.0.${10 + i}/24`, 'dev', 'eth0']);
  ip(['-n', name, 'link', 'set', 'eth0', 'up']);
  ip(['-n', UNDERLAY, 'link', 'set', `v${i}`, 'master', 'br0', 'up']);
  return { i, name, path: netnsPath(name), nodeName: `n${i}`, underlayIp: `198.18.0.${10 + i}` };
}

async function startCluster() {
  makeUnderlay();
  const etcdDir = join(owned.dir, 'etcd');
  mkdirSync(etcdDir);
  const etcd = await startEtcd({ netns: netnsPath(UNDERLAY), host: UNDERLAY_GW, clientPort: ETCD_PORT, peerPort: 2380, dir: etcdDir });
  owned.etcdPid = etcd.pid;
  return etcd;
}

/** Starts `testcni agent` in the node's netns (its pid is the agent's: nsenter execs node). */
function startAgent(node, { etcdPrefix, blockSize = 24, leaseTtl = 3 }) {
  const dir = join(owned.dir, node.nodeName);
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'agent.sock');
  const log = openSync(join(dir, 'agent.log'), 'a');
  const argv = [NSENTER, `--net=${node.path}`, '--', process.execPath, PLUGIN, 'agent',
    '--node-name', node.nodeName, '--underlay-ip', node.underlayIp, '--etcd-endpoints', `http://${UNDERLAY_GW}:${ETCD_PORT}`,
    '--etcd-prefix', etcdPrefix, '--socket', socket, '--state-dir', join(dir, 'state'), '--metrics-address', 'off',
    '--cluster-subnet', '10.244.0.0/16', '--block-size', String(blockSize), '--lease-ttl', String(leaseTtl), '--resync', '30'];
  // PATH only: NODE_EXTRA_CA_CERTS (set on some dev machines) costs ~80 ms per node start.
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', log, log], env: { PATH: TOOL_PATH } });
  closeSync(log);
  const agent = { node, pid: child.pid, child, socket, dir, spawnedAt: now(), exited: null, client: new AgentStore(socket, 2000) };
  child.on('exit', (code, sig) => { agent.exited = code ?? sig; });
  owned.agents.set(node.nodeName, agent);
  return agent;
}

async function stopAgent(agent) {
  await stopPid(agent.pid, 3000);
  owned.agents.delete(agent.node.nodeName);
}

async function statusOf(agent) {
  try {
    return await agent.client.agentStatus();
  } catch {
    return null;
  }
}

/** Waits for the agent to report ready; returns ms from spawn. */
async function waitReady(agent, timeoutMs = 20_000) {
  const deadline = now() + timeoutMs;
  for (;;) {
    if (agent.exited !== null) throw new Error(`agent ${agent.node.nodeName} exited (${agent.exited}); log: ${join(agent.dir, 'agent.log')}`);
    const s = await statusOf(agent);
    if (s?.ready) return { ms: now() - agent.spawnedAt, status: s };
    if (now() > deadline) throw new Error(`agent ${agent.node.nodeName} not ready after ${timeoutMs} ms: ${s?.reason ?? 'no answer'}`);
    await sleep(10);
  }
}

function memoryOf(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(text.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}

// ---- (a) allocations per second through the agent API ----

async function allocationRun(agent, total, clients, tag) {
  let next = 0;
  const ms = [];
  const ips = new Set();
  const errors = [];
  const client = async () => {
    for (;;) {
      const n = next++;
      if (n >= total) return;
      const t0 = now();
      try {
        const lease = await agent.client.allocate({ containerId: `${tag}-${n}`, ifName: 'eth0' });
        ms.push(now() - t0);
        ips.add(lease.address);
      } catch (e) {
        errors.push(`${e.code ?? ''} ${e.message}`);
      }
    }
  };
  const t0 = now();
  await Promise.all(Array.from({ length: clients }, client));
  const wallMs = now() - t0;
  return { total, clients, wallMs, perSec: (ms.length / wallMs) * 1000, latency: summary(ms), distinct: ips.size, errors };
}

// ---- (b) ADD with cluster IPAM vs file IPAM ----

let podSeq = 0;
function makePod() {
  const name = `${prefix}p${podSeq++}`;
  addNetns(name);
  return { name, path: netnsPath(name), containerId: `${prefix}-pod-${podSeq}` };
}

function dropPod(pod) {
  ip(['netns', 'del', pod.name], { allowFail: true });
  owned.netns.splice(owned.netns.indexOf(pod.name), 1);
}

async function cniCall(node, pluginFile, config, verb, pod) {
  const env = { PATH: TOOL_PATH, CNI_COMMAND: verb, CNI_CONTAINERID: pod.containerId, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
  const r = await timedRun([NSENTER, `--net=${node.path}`, '--', process.execPath, pluginFile], { env, input: JSON.stringify(config) });
  if (r.code !== 0) throw new Error(`${config.ipam.type ?? 'file'} ${verb} exited ${r.code}: ${(r.stdout + r.stderr).trim().slice(-500)}`);
  return r.ms;
}

async function addComparison(node, agent, iterations) {
  // A copy taken now: a rebuild of dist/ meanwhile (npm test rebuilds it) cannot change what is
  // measured. The CNI path loads nothing else from dist/.
  const pluginFile = join(owned.dir, 'testcni.cjs');
  copyFileSync(PLUGIN, pluginFile);
  const base = { cniVersion: '1.1.0', type: 'testcni', subnet: '10.244.0.0/16', ipMasq: false, mtu: 1500 };
  const kinds = [
    { key: 'cluster', config: { ...base, name: 'benchcluster', bridge: 'tcbc0', stateDir: join(owned.dir, 'cstate'), ipam: { type: 'cluster', agentSocket: agent.socket } } },
    { key: 'file', config: { ...base, name: 'benchfile', bridge: 'tcbf0', subnet: '10.245.0.0/16', stateDir: join(owned.dir, 'fstate'), ipam: { type: 'file', dataDir: join(owned.dir, 'fipam') } } },
  ];
  const out = Object.fromEntries(kinds.map((k) => [k.key, { ADD: [], DEL: [] }]));
  for (let i = 0; i < WARMUP_PAIRS + iterations; i++) {
    for (const k of i % 2 ? [...kinds].reverse() : kinds) {
      const pod = makePod();
      const add = await cniCall(node, pluginFile, k.config, 'ADD', pod);
      const del = await cniCall(node, pluginFile, k.config, 'DEL', pod);
      dropPod(pod);
      if (i < WARMUP_PAIRS) continue;
      out[k.key].ADD.push(add);
      out[k.key].DEL.push(del);
    }
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { ADD: summary(v.ADD), DEL: summary(v.DEL) }]));
}

// ---- (c) node join -> every other agent converged ----

const hasRoute = (s, dst, via) => (s?.routes ?? []).some((r) => r.dst === dst && (via === undefined || r.via === via));

/** Polls every agent's /v1/status until `done(status)` holds for all; ms since `t0`. */
async function untilAll(agents, done, t0, timeoutMs = 15_000) {
  const pending = new Set(agents);
  const at = new Map();
  while (pending.size > 0) {
    await Promise.all([...pending].map(async (a) => {
      if (done(await statusOf(a))) {
        at.set(a.node.nodeName, now() - t0);
        pending.delete(a);
      }
    }));
    if (pending.size === 0) break;
    if (now() - t0 > timeoutMs) throw new Error(`not converged after ${timeoutMs} ms: ${[...pending].map((a) => a.node.nodeName).join(', ')}`);
    await sleep(2);
  }
  return Math.max(...at.values());
}

/** The kernel's view, to confirm what the agents report: routes with our protocol in the node netns. */
function kernelRoutes(node) {
  return parseRoutes(JSON.parse(spawnSync(IP, ['-n', node.name, '-j', 'route', 'show', 'proto', String(PROTO)], { encoding: 'utf8' }).stdout || '[]'));
}

function etcdctl(args) {
  return timedRun([NSENTER, `--net=${netnsPath(UNDERLAY)}`, '--', ETCDCTL, '--endpoints', `http://${UNDERLAY_GW}:${ETCD_PORT}`, ...args], { env: { PATH: TOOL_PATH, ETCDCTL_API: '3' } });
}

async function recordJoins(agents, etcdPrefix, runs, size, round) {
  const join = { fromPut: [], fromPutExit: [], leave: [] };
  for (let r = 0; r < runs; r++) {
    const k = 100 + round * 60 + r; // blocks and underlay addresses no agent has
    const rec = { name: `fake-${size}-${r}`, underlayIp: `198.18.0.${k}`, block: `10.244.${k}.0/24` };
    const t0 = now();
    const put = await etcdctl(['put', `${etcdPrefix}/nodes/${rec.name}`, JSON.stringify(rec)]);
    if (put.code !== 0) throw new Error(`etcdctl put: ${put.stderr}`);
    const tExit = now();
    const ms = await untilAll(agents, (s) => hasRoute(s, rec.block, rec.underlayIp), t0);
    join.fromPut.push(ms);
    join.fromPutExit.push(ms - (tExit - t0));
    for (const a of agents) {
      if (!kernelRoutes(a.node).some((x) => x.dst === rec.block && x.via === rec.underlayIp)) throw new Error(`${a.node.nodeName}: the agent reports ${rec.block} but the kernel has no such route`);
    }
    const t1 = now();
    const del = await etcdctl(['del', `${etcdPrefix}/nodes/${rec.name}`]);
    if (del.code !== 0) throw new Error(`etcdctl del: ${del.stderr}`);
    join.leave.push(await untilAll(agents, (s) => s !== null && !hasRoute(s, rec.block), t1));
  }
  return join;
}

/** A real agent joins: from its spawn until every other agent routes to its block. */
async function agentJoin(others, joinerNode, etcdPrefix) {
  const joiner = startAgent(joinerNode, { etcdPrefix });
  const t0 = joiner.spawnedAt;
  const othersMs = await untilAll(others, (s) => (s?.routes ?? []).some((r) => r.via === joinerNode.underlayIp), t0, 30_000);
  const ready = await waitReady(joiner);
  const ownMs = await untilAll([joiner], (s) => (s?.routes ?? []).length === others.length, t0, 30_000);
  // It leaves: stopped, its registration lapses after the lease TTL and the others drop the route.
  const t1 = now();
  await stopAgent(joiner);
  const leaveMs = await untilAll(others, (s) => s !== null && !(s.routes ?? []).some((r) => r.via === joinerNode.underlayIp), t1, 30_000);
  return { othersMs, readyMs: ready.ms, ownMs, leaveMs };
}

// ---- (d) node-plan compile time ----

function planCompile(runs) {
  const N = 1000;
  const registry = Array.from({ length: N }, (_, i) => ({
    name: `node-${String(i).padStart(4, '0')}`,
    underlayIp: `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    block: `10.${64 + Math.floor(i / 256)}.${i % 256}.0/24`,
  }));
  const self = registry[0].name;
  const facts = { tools: { ip: '/usr/sbin/ip', nsenter: '/usr/bin/nsenter', sysctl: '/usr/sbin/sysctl', iptables: '/usr/sbin/iptables' }, hostPid: 1, uplinkMtu: 1500 };
  const desired = desiredRoutes(self, registry);
  // Half-overlapping: every other desired route is in place, plus as many of departed nodes.
  const half = [
    ...desired.filter((_, i) => i % 2 === 0),
    ...Array.from({ length: 500 }, (_, i) => ({ dst: `10.${80 + Math.floor(i / 256)}.${i % 256}.0/24`, via: `198.19.${Math.floor(i / 250)}.${(i % 250) + 1}` })),
  ];
  // The same registry as the kernel would list it back (ip -j route show), for the full pipeline.
  const kernelJson = half.map((r) => ({ dst: r.dst, gateway: r.via, dev: 'eth0', protocol: String(PROTO), flags: [] }));
  const cases = [
    { key: 'empty', label: 'observed empty (fresh node)', run: () => routeSteps(desiredRoutes(self, registry), [], facts, PROTO) },
    { key: 'half', label: 'half-overlapping observed', run: () => routeSteps(desiredRoutes(self, registry), half, facts, PROTO) },
    { key: 'halfParsed', label: 'half-overlapping, incl. parseRoutes', run: () => routeSteps(desiredRoutes(self, registry), parseRoutes(kernelJson), facts, PROTO) },
    { key: 'steady', label: 'observed == desired (steady state)', run: () => routeSteps(desiredRoutes(self, registry), desired, facts, PROTO) },
  ];
  const out = {};
  for (const c of cases) {
    let steps = null;
    for (let i = 0; i < 5; i++) steps = c.run(); // warm-up (JIT)
    const ms = [];
    for (let i = 0; i < runs; i++) {
      const t0 = now();
      steps = c.run();
      ms.push(now() - t0);
    }
    const verbs = (v) => steps.filter((s) => s.argv[2] === v).length;
    out[c.key] = { label: c.label, ...summary(ms), steps: steps.length, add: verbs('add'), replace: verbs('replace'), del: verbs('del') };
  }
  return { nodes: N, desired: desired.length, runs, cases: out };
}

// ---- report ----

const verdict = (pass) => (pass ? 'PASS' : 'MISS');
const mb = (kb) => `${fmt(kb / 1024)} MB`;

function report(r) {
  const lines = [];
  const say = (s = '') => lines.push(s);
  say(`testcni agent benchmark: ${cpus().length} CPUs, linux ${release()}, node ${process.version}, ${r.etcdVersion}`);
  say(`cluster: underlay bridge netns with etcd on ${UNDERLAY_GW}:${ETCD_PORT} (data dir on ${r.etcdDisk}), one netns + one agent per node; load avg ${fmt(r.load.start, 2)} -> ${fmt(r.load.end, 2)}`);
  say();
  const a = r.alloc;
  say(`(a) allocations through the agent API: ${a.total} allocations, ${a.clients} concurrent clients (AgentStore over the unix socket), block /20`);
  say(`    ${fmt(a.perSec, 0)} allocations/s (wall ${fmt(a.wallMs, 0)} ms); latency p50 ${fmt(a.latency.p50, 2)} ms, p95 ${fmt(a.latency.p95, 2)} ms, max ${fmt(a.latency.max, 1)} ms; ` +
    `${a.distinct} distinct addresses, ${a.errors.length} errors   target >= ${TARGET.allocsPerSec}/s: ${verdict(a.perSec >= TARGET.allocsPerSec)}`);
  if (a.errors.length) say(`    first error: ${a.errors[0]}`);
  say(`    one client, sequential (${r.allocSeq.total}): ${fmt(r.allocSeq.perSec, 0)}/s, p50 ${fmt(r.allocSeq.latency.p50, 2)} ms, p95 ${fmt(r.allocSeq.latency.p95, 2)} ms`);
  say();
  const c = r.add;
  say(`(b) ADD and DEL through the plugin (node dist/testcni.cjs via nsenter, same node netns), ${opts.iterations} ADD+DEL pairs per IPAM kind, interleaved, ms:`);
  say(table(['IPAM', 'ADD p50', 'ADD p95', 'DEL p50', 'DEL p95'], ['cluster', 'file'].map((k) => [
    k === 'cluster' ? 'cluster (agent API -> etcd)' : 'file (host-local layout)', fmt(c[k].ADD.p50), fmt(c[k].ADD.p95), fmt(c[k].DEL.p50), fmt(c[k].DEL.p95)])).replace(/^/gm, '    '));
  const dAdd = c.cluster.ADD.p50 - c.file.ADD.p50;
  say(`    cluster ADD p50 - file ADD p50 = ${dAdd >= 0 ? '+' : ''}${fmt(dAdd)} ms   target <= +${TARGET.clusterOverFileMs} ms: ${verdict(dAdd <= TARGET.clusterOverFileMs)}`);
  say();
  say('(c) node join -> every other agent has the route in its kernel (polled: each agent\'s /v1/status routes, which it reads back from');
  say('    `ip -j route show proto 151` after applying; each join also confirmed in every node\'s kernel), ms:');
  const rows = [];
  for (const j of r.joins) {
    rows.push([`${j.size} agents: record put with etcdctl`, fmt(percentile(j.records.fromPut, 50)), fmt(Math.max(...j.records.fromPut)),
      fmt(percentile(j.records.fromPutExit, 50)), fmt(percentile(j.records.leave, 50)), fmt(Math.max(...j.records.leave))]);
  }
  say(table(['join of', 'p50', 'max', 'p50 after put returned', 'leave p50', 'leave max'], rows).replace(/^/gm, '    '));
  const worst = Math.max(...r.joins.flatMap((j) => j.records.fromPut));
  say(`    worst join over ${opts['join-runs']} runs x ${r.joins.length} sizes: ${fmt(worst)} ms   target <= ${TARGET.joinMs} ms: ${verdict(worst <= TARGET.joinMs)}`);
  say('    a real agent joining (spawned in a new node netns: node start + etcd join included):');
  for (const j of r.joins) {
    const g = j.agent;
    say(`      with ${j.size} agents: every other agent routed to it ${fmt(g.othersMs)} ms after spawn; it was ready at ${fmt(g.readyMs)} ms and had all ${j.size} routes at ${fmt(g.ownMs)} ms;` +
      ` stopped, its routes were gone elsewhere ${fmt(g.leaveMs)} ms later (lease TTL 3 s)`);
  }
  say();
  const p = r.plan;
  say(`(d) node-plan compile (desiredRoutes + routeSteps), synthetic registry of ${p.nodes} nodes (${p.desired} routes wanted), ${p.runs} runs per case, ms:`);
  say(table(['case', 'median', 'p95', 'steps (add/replace/del)'], Object.values(p.cases).map((x) => [x.label, fmt(x.p50, 2), fmt(x.p95, 2), `${x.steps} (${x.add}/${x.replace}/${x.del})`])).replace(/^/gm, '    '));
  const planWorst = Math.max(...Object.values(p.cases).map((x) => x.p50));
  say(`    worst median ${fmt(planWorst, 2)} ms   target <= ${TARGET.planMs} ms: ${verdict(planWorst <= TARGET.planMs)}`);
  say();
  const m = r.mem;
  say('(e) agent memory (/proc/<pid>/status):');
  say(`    throughput agent after start-up (ready in ${fmt(r.readyMs, 0)} ms): VmRSS ${mb(m.start.rssKb)}, VmHWM ${mb(m.start.hwmKb)}`);
  say(`    after ${a.total + r.allocSeq.total + WARMUP_ALLOCS} allocations and ${opts.iterations + WARMUP_PAIRS} cluster ADD/DEL: VmRSS ${mb(m.after.rssKb)}, VmHWM ${mb(m.after.hwmKb)}`);
  say(`    ${m.idle.length} idle agents of the join test: VmRSS median ${mb(percentile(m.idle.map((x) => x.rssKb), 50))}, max ${mb(Math.max(...m.idle.map((x) => x.rssKb)))}`);
  say();
  say('notes:');
  say('- targets are informational; figures vary by machine and load (a 2-CPU box runs etcd, the agents and the clients together).');
  say('- (a): the client is the plugin\'s own AgentStore in this process: one new unix-socket connection per allocation, as');
  say('  each plugin process makes. Each allocation is one etcd transaction (create-if-absent of address and handle).');
  say('- (c): the node record is put directly into etcd with etcdctl (no lease), timed from spawning etcdctl (an upper bound: it');
  say('  includes etcdctl\'s own start); "after put returned" is from its exit (a lower bound). Leave = etcdctl del -> route gone everywhere.');
  say('- agents run with --metrics-address off, --lease-ttl 3, --resync 30 and PATH as their only environment variable.');
  return lines.join('\n');
}

async function main() {
  const load = { start: loadavg()[0] };
  progress(`prefix ${prefix}, temp dir ${owned.dir}`);
  const etcd = await startCluster();
  const etcdVersion = spawnSync(which('etcd'), ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0].trim();
  const etcdDisk = spawnSync('df', ['--output=fstype', owned.dir], { encoding: 'utf8' }).stdout.split('\n')[1]?.trim() ?? '?';
  progress(`etcd ${etcd.endpoint} in ${UNDERLAY} (pid ${etcd.pid})`);

  // (a), (b), (e): one node whose agent owns a /20.
  const n1 = makeNode(1);
  const agent = startAgent(n1, { etcdPrefix: '/bench-alloc', blockSize: 20 });
  const ready = await waitReady(agent);
  await sleep(500); // let start-up garbage settle before reading RSS
  const memStart = memoryOf(agent.pid);
  progress(`agent n1 ready in ${fmt(ready.ms, 0)} ms (block ${ready.status.block}); allocations: ${WARMUP_ALLOCS} warm-up, then ${opts.allocations} x ${opts.clients} clients`);
  await allocationRun(agent, WARMUP_ALLOCS, opts.clients, 'warm');
  const alloc = await allocationRun(agent, opts.allocations, opts.clients, 'run');
  const allocSeq = await allocationRun(agent, 500, 1, 'seq');
  progress(`ADD/DEL: cluster vs file IPAM, ${opts.iterations} pairs each`);
  const add = await addComparison(n1, agent, opts.iterations);
  const memAfter = memoryOf(agent.pid);
  await stopAgent(agent);

  // (c): 3 then 8 agents, each node in its own netns.
  const nodes = [];
  const agents = [];
  const joins = [];
  const joiner = makeNode(20);
  for (const size of [3, 8]) {
    while (agents.length < size) {
      const node = makeNode(2 + nodes.length);
      nodes.push(node);
      agents.push(startAgent(node, { etcdPrefix: '/bench-join' }));
    }
    for (const a of agents) await waitReady(a);
    await untilAll(agents, (s) => (s?.routes ?? []).length === size - 1, now(), 20_000);
    progress(`${size} agents converged; ${opts['join-runs']} record joins/leaves, then a real agent joins and leaves`);
    const records = await recordJoins(agents, '/bench-join', opts['join-runs'], size, joins.length);
    const agentRun = await agentJoin(agents, joiner, '/bench-join');
    joins.push({ size, records, agent: agentRun });
  }
  const idle = agents.map((a) => memoryOf(a.pid));
  for (const a of agents) await stopAgent(a);

  progress(`node-plan compile, ${opts['plan-runs']} runs per case`);
  const plan = planCompile(opts['plan-runs']);
  await stopPid(etcd.pid);
  owned.etcdPid = null;
  load.end = loadavg()[0];

  const r = { alloc, allocSeq, add, joins, plan, mem: { start: memStart, after: memAfter, idle }, readyMs: ready.ms, load, etcdVersion, etcdDisk };
  process.stdout.write((opts.json ? JSON.stringify({ opts, targets: TARGET, ...r }, roundNumbers, 2) : report(r)) + '\n');
}

try {
  await main();
} catch (e) {
  process.stderr.write(`agent bench: failed: ${e?.stack ?? e}\n`);
  // The agents' last words, before their directories go.
  for (const a of owned.agents.values()) {
    const log = join(a.dir, 'agent.log');
    const tail = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-8).join('\n') : '(no log)';
    process.stderr.write(`--- agent ${a.node.nodeName} (${log}):\n${tail}\n`);
  }
  process.exitCode = 1;
} finally {
  cleanup();
}
