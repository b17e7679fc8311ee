#!/usr/bin/env node
// ipip figures (issue 9). (a) CNI ADD/DEL latency and processes per call of ipip beside
// host-gw's, on one simulated node with the same plugin bundle (file IPAM). (b) BGP through the
// agents, on the lab (`testcni lab`, ipipMode never: this kernel has no ipip device): from the
// agents' start to every session Established and to every node's kernel holding every other
// block (3 nodes); a 4th node joining -> its block in every kernel and theirs in its own, and the
// BIRD reloads it costs each existing node; a node leaving (agent stopped) -> its block gone
// everywhere; BIRD killed -> restarted and converged. Prints figures; exits 0 once it has
// measured (2: cannot run here). Removes everything it made.
import { register } from 'tsx/esm/api';
import { join } from 'node:path';
import { tmpdir, cpus, release, loadavg } from 'node:os';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { PLUGIN, summary, fmt, table, parseArgs, fail, roundNumbers, which } from './lib.mjs';
import { Scratch } from './scratch.mjs';

const USAGE = `usage: node bench/ipip.mjs [--iterations N] [--rounds R] [--json]   (as root)
  --iterations N  ADD+DEL pairs per mode for the latency figures (default 30)
  --rounds R      labs built for the BGP figures (default 3)
  --json          print the figures as one JSON document instead of tables`;
const opts = parseArgs(process.argv.slice(2), {
  iterations: { default: 30, min: 1, max: 70 },
  rounds: { default: 3, min: 1, max: 20 },
  json: { type: 'flag', default: false },
}, USAGE);

if (process.getuid?.() !== 0) fail('ipip: needs root (it creates network namespaces); run it as root');
if (!existsSync(PLUGIN)) fail(`ipip: ${PLUGIN} is missing: run npm run build first`);
for (const t of ['ip', 'nsenter', 'bird', 'birdc', 'etcd']) if (!which(t)) fail(`ipip: needs ${t} (scripts/setup.sh installs it)`);
const progress = (msg) => process.stderr.write(`ipip: ${msg}\n`);
const IP = which('ip');

register();
const { labUp } = await import('../lab/up.ts');
const { labDown } = await import('../lab/down.ts');
const { agentStatus, defineNode, startAgent, stopAgent, LAB_AGENT_TUNING } = await import('../lab/agents.ts');
const { createNodeNetwork } = await import('../lab/topology.ts');
const { readLabState } = await import('../lab/state.ts');
const { mkdirSync } = await import('node:fs');

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const POLL_MS = 25;

async function until(probe, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return now();
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(POLL_MS);
  }
}

const bird = (st) => st?.daemons?.find((d) => d.name === 'bird');
/** Every session of every node Established, one per other member. */
async function allEstablished(nodes) {
  const sts = await Promise.all(nodes.map((n) => agentStatus(n, 2000)));
  return sts.every((st) => (bird(st)?.sessions ?? []).filter((s) => s.established).length === nodes.length - 1);
}
/** Every node's kernel holds a route from BIRD (protocol 12) to every other member's block. */
function allRoutes(nodes) {
  return nodes.every((n) => {
    const r = spawnSync(IP, ['-n', n.netns, '-j', 'route', 'show', 'proto', 'bird'], { encoding: 'utf8' });
    const have = new Set(r.status === 0 ? JSON.parse(r.stdout || '[]').map((x) => x.dst) : []);
    return nodes.every((o) => o === n || (blocks.get(o.name) !== undefined && have.has(blocks.get(o.name))));
  });
}
/** Every agent reports its node converged (it also waits for BIRD's routes), for the nodes there are. */
async function allConverged(nodes) {
  const sts = await Promise.all(nodes.map((n) => agentStatus(n, 2000)));
  return sts.every((st) => st?.converged && st.nodes.length === nodes.length);
}
/** Each node's block, as its agent claimed it. */
const blocks = new Map();
async function learnBlocks(nodes) {
  for (const n of nodes) blocks.set(n.name, (await agentStatus(n, 2000))?.block ?? undefined);
  return nodes.every((n) => blocks.get(n.name));
}
const reloads = async (nodes) => Promise.all(nodes.map(async (n) => bird(await agentStatus(n, 2000))?.reloads ?? NaN));

async function bgpRound(round) {
  const name = `tcq${(process.pid % 1296).toString(36)}${round.toString(36)}`;
  const dir = join(tmpdir(), `${name}-lab`);
  const out = {};
  try {
    // (1) start: the agents of a new lab, from their start (their PIDs in lab.json) on.
    let started = null;
    let established = null;
    let routedAt = null;
    let done = false;
    const up = labUp({ name, dir, nodes: 3, pods: 0, mode: 'ipip', modeOptions: { 'ipip-mode': 'never' }, binary: PLUGIN, nodeExec: process.execPath })
      .finally(() => { done = true; });
    while (!done || established === null) {
      const s = readLabState(dir);
      if (started === null && s && s.nodes.length === 3 && s.nodes.some((n) => n.agentPid)) started = now();
      if (started !== null && established === null && (await allEstablished(s.nodes))) established = now();
      if (established !== null && routedAt === null && (await learnBlocks(s.nodes)) && allRoutes(s.nodes)) routedAt = now();
      if (done && established === null && started === null) break;
      await sleep(POLL_MS);
    }
    const report = await up;
    const nodes = [...report.record.state.nodes]; // a copy: the join adds n4 to the state
    const routed = routedAt ?? (await until(async () => (await learnBlocks(nodes)) && allRoutes(nodes), 30_000, 'routes after start'));
    const converged = await until(() => allConverged(nodes), 30_000, 'the agents converged');
    out.startEstablishedMs = established - started;
    out.startRoutesMs = routed - started;
    out.startAgentsConvergedMs = converged - started;

    // (2) join: a 4th node, made as `lab up` makes one, its agent started at t0.
    const rec = report.record;
    const n4 = defineNode(rec.state, 4, LAB_AGENT_TUNING);
    rec.update((s) => s.nodes.push(n4));
    mkdirSync(n4.dir, { recursive: true, mode: 0o755 });
    await createNodeNetwork(rec, n4);
    const before = await reloads(nodes);
    const t1 = now();
    await startAgent(rec, n4);
    const all = [...nodes, n4];
    out.joinRoutesMs = (await until(async () => (await learnBlocks(all)) && allRoutes(all), 30_000, 'routes after the join')) - t1;
    out.joinAgentsConvergedMs = (await until(() => allConverged(all), 30_000, 'the agents converged after the join')) - t1;
    await sleep(500); // a late second reload would show now
    const after = await reloads(nodes);
    out.reloadsPerJoin = after.reduce((a, r, i) => a + r - before[i], 0) / nodes.length;

    // (3) BIRD killed on n1: restarted by its agent, sessions and routes back.
    const victim = nodes[0];
    const old = bird(await agentStatus(victim, 2000)).pid;
    const t2 = now();
    process.kill(old, 'SIGKILL');
    out.killConvergedMs = (await until(async () => {
      const b = bird(await agentStatus(victim, 2000));
      return b && b.pid !== old && b.running && (await allEstablished(all)) && allRoutes(all);
    }, 30_000, 'convergence after the kill')) - t2;

    // (4) leave: n4's agent stopped; its block gone from the others once its registration lapses.
    const beforeLeave = await reloads(nodes);
    const t3 = now();
    await stopAgent(rec, n4);
    out.leaveWithdrawnMs = (await until(() => nodes.every((n) => !spawnSync(IP, ['-n', n.netns, '-j', 'route', 'show', 'proto', 'bird'], { encoding: 'utf8' }).stdout.includes(blocks.get(n4.name))), 60_000, 'the leave')) - t3;
    await sleep(500);
    const afterLeave = await reloads(nodes);
    out.reloadsPerLeave = afterLeave.reduce((a, r, i) => a + r - beforeLeave[i], 0) / nodes.length;
    return out;
  } finally {
    await labDown(dir).catch((e) => progress(`lab down: ${e.message}`));
  }
}

/** ADD/DEL of ipip (the original's ipipMode always) and host-gw, on one node netns of its own. */
async function podLatency() {
  const scratch = new Scratch('ipip');
  try {
    const node = { ns: `${scratch.prefix}n` };
    scratch.createNetns([node.ns]);
    scratch.ip(['-n', node.ns, 'link', 'set', 'lo', 'up']);
    const network = (mode, block, own) => ({
      cniVersion: '1.1.0', name: `${scratch.prefix}${mode}`, type: 'testcni', mode, subnet: '10.244.0.0/16', mtu: 1480,
      stateDir: join(scratch.dir, `state-${mode}`), ipam: { block, dataDir: join(scratch.dir, `ipam-${mode}`) }, ...own,
    });
    return await scratch.modeLatency(node, [
      ['ipip', network('ipip', '10.244.2.0/24', { bgp: { ipipMode: 'always' } })],
      ['host-gw', network('host-gw', '10.244.1.0/24', { bridge: `${scratch.prefix}b`.slice(0, 15) })],
    ], { iterations: opts.iterations });
  } finally {
    scratch.cleanup();
  }
}

async function main() {
  const loadStart = loadavg()[0].toFixed(2);
  progress(`latency: ${opts.iterations} ADD+DEL pairs per mode`);
  const latency = await podLatency();
  const bgp = {};
  for (let round = 1; round <= opts.rounds; round++) {
    const r = await bgpRound(round);
    for (const [k, v] of Object.entries(r)) (bgp[k] ??= []).push(v);
    progress(`BGP round ${round}/${opts.rounds} done`);
  }
  const r = {
    machine: { cpus: cpus().length, kernel: release(), loadStart, loadEnd: loadavg()[0].toFixed(2) },
    latency,
    bgp: Object.fromEntries(Object.entries(bgp).map(([k, v]) => [k, summary(v)])),
  };
  if (opts.json) return void process.stdout.write(JSON.stringify(r, roundNumbers, 2) + '\n');
  const say = (line = '') => process.stdout.write(line + '\n');
  say(`ipip benchmark — ${r.machine.cpus} CPU, kernel ${r.machine.kernel}, node ${process.version}, load ${r.machine.loadStart} -> ${r.machine.loadEnd}`);
  say();
  say(`(a) CNI call latency, ms (${opts.iterations} ADD+DEL pairs per mode, interleaved, same node and bundle; wall time spawn -> exit)`);
  say(table(['mode', 'ADD p50', 'ADD p95', 'DEL p50', 'DEL p95', 'processes ADD/DEL'],
    Object.entries(latency).map(([m, x]) => [m, fmt(x.ADD.p50), fmt(x.ADD.p95), fmt(x.DEL.p50), fmt(x.DEL.p95), `${x.processes.ADD[0]}/${x.processes.DEL[0]}`])));
  for (const [m, x] of Object.entries(latency)) {
    if (x.processes.straceADD.length) say(`  ${m}: strace ADD ${x.processes.straceADD[0].join(', ')} | DEL ${x.processes.straceDEL[0].join(', ') || 'none'}`);
  }
  say();
  say(`(b) BGP through the agents (lab, 3 nodes, ipipMode never, lab timers: hold 9 s, keepalive 3 s, connect delay 1 s), ${opts.rounds} round(s)`);
  say(table(['figure (ms, or reloads per existing node)', 'n', 'p50', 'p95', 'min', 'max'],
    Object.entries(r.bgp).map(([k, s]) => [k, s.n, fmt(s.p50), fmt(s.p95), fmt(s.min), fmt(s.max)])));
  say('  start: from the agents\' start (lab.json has their PIDs; polled every 25 ms) to every session Established, to every');
  say('  kernel holding every other block from BIRD (Routes), and to every agent reporting its node converged (it looks again');
  say('  at a growing interval while it waits for BGP routes). A leave waits for the registration lease (3 s) and the route grace (3 s).');
}

try {
  await main();
} catch (e) {
  process.stderr.write(`ipip: ${e.stack ?? e}\n`);
  process.exit(1);
}
