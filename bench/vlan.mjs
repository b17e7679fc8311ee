#!/usr/bin/env node
// macvlan figures, in one run and one namespace setup: pod -> pod throughput across two nodes
// against the underlay itself (node -> node), with iperf3; and ADD/DEL latency and processes per
// call of macvlan beside host-gw's, on the same node with the same plugin bundle. Prints figures;
// always exits 0 once it has measured (2: cannot run here).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, cpus, release, loadavg } from 'node:os';
import { PLUGIN, TOOL_PATH, which, liveChildren, timedRun, summary, fmt, table, parseArgs, fail, roundNumbers, execsByPid, spawnedFromLog } from './lib.mjs';

const USAGE = `usage: node bench/vlan.mjs [--iterations N] [--seconds S] [--runs R] [--json]   (as root)
  --iterations N  ADD+DEL pairs per mode for the latency figures (default 30)
  --seconds S     length of one iperf3 run (default 5)
  --runs R        iperf3 runs per path, alternating pod->pod and node->node (default 3)
  --json          print the figures as one JSON document instead of tables`;
const opts = parseArgs(process.argv.slice(2), {
  iterations: { default: 30, min: 1, max: 70 },
  seconds: { default: 5, min: 1, max: 60 },
  runs: { default: 3, min: 1, max: 20 },
  json: { type: 'flag', default: false },
}, USAGE);

const WARMUP = 3;
const COUNT_RUNS = 3;

if (process.getuid?.() !== 0) fail('vlan: needs root (it creates network namespaces); run it as root');
if (!existsSync(PLUGIN)) fail(`vlan: ${PLUGIN} is missing: run npm run build first`);
const IP = which('ip');
const NSENTER = which('nsenter');
const IPERF = which('iperf3');
if (!IP || !NSENTER) fail('vlan: needs ip (iproute2) and nsenter (util-linux)');
if (!IPERF) fail('vlan: needs iperf3 (Debian: apt-get install iperf3)');
const STRACE = which('strace');

const progress = (msg) => process.stderr.write(`vlan: ${msg}\n`);

// ---- what this run creates, removed at the end whatever happens ----
const prefix = `tcv-${(process.pid % 1296).toString(36).padStart(2, '0')}${Math.floor(Math.random() * 1296).toString(36).padStart(2, '0')}`;
const owned = { netns: new Set(), dir: null, servers: [] };
let cleanedUp = false;

function ip(args, input) {
  const r = spawnSync(IP, args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

function deleteNetns(names) {
  if (names.length === 0) return;
  spawnSync(IP, ['-force', '-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join(''), stdio: ['pipe', 'ignore', 'ignore'] });
  for (const n of names) owned.netns.delete(n);
}

function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const child of [...liveChildren, ...owned.servers]) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  deleteNetns([...owned.netns]);
  if (owned.dir) rmSync(owned.dir, { recursive: true, force: true });
  const left = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(prefix));
  if (left.length > 0) process.stderr.write(`vlan: could not remove netns: ${left.join(', ')}\n`);
}

process.on('exit', cleanup);
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(sig, () => {
    process.stderr.write(`vlan: ${sig}: cleaning up\n`);
    cleanup();
    process.exit(code);
  });
}

function createNetns(names) {
  for (const n of names) owned.netns.add(n);
  ip(['-batch', '-'], names.map((n) => `netns add ${n}\n`).join(''));
}

const nsPath = (name) => `/var/run/netns/${name}`;

// ---- the cluster: an underlay bridge, two nodes on it ----
const GATEWAY = '198.18.0.1';
const NODES = [{ ip: '198.18.0.11', range: ['198.18.0.128', '198.18.0.189'] }, { ip: '198.18.0.12', range: ['198.18.0.190', '198.18.0.250'] }];

function setup() {
  owned.dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const pluginFile = join(owned.dir, 'testcni.cjs');
  copyFileSync(PLUGIN, pluginFile); // a rebuild of dist/ during the run cannot change what is measured
  const u = `${prefix}u`;
  const nodes = NODES.map((n, i) => ({ ...n, ns: `${prefix}n${i + 1}` }));
  createNetns([u, ...nodes.map((n) => n.ns)]);
  ip(['-n', u, '-batch', '-'], ['link add br0 type bridge', `addr add ${GATEWAY}/24 dev br0`, 'link set br0 up',
    ...nodes.flatMap((n, i) => [`link add up${i} type veth peer name eth0 netns ${n.ns}`, `link set up${i} master br0 up`])].join('\n') + '\n');
  for (const n of nodes) ip(['-n', n.ns, '-batch', '-'], ['link set eth0 up', `addr add ${n.ip}/24 dev eth0`, `route add default via ${GATEWAY}`].join('\n') + '\n');
  const network = (mode, node, i) => ({
    cniVersion: '1.1.0', name: `${prefix}${mode}`, type: 'testcni', stateDir: join(owned.dir, `state-${i}`),
    ...(mode === 'macvlan'
      ? { mode, subnet: '198.18.0.0/24', macvlan: { master: 'eth0', mode: 'bridge' },
          ipam: { rangeStart: node.range[0], rangeEnd: node.range[1], gateway: GATEWAY, dataDir: join(owned.dir, `ipam-${i}`) } }
      : { mode, subnet: '10.244.0.0/16', bridge: `${prefix}b`.slice(0, 15), mtu: 1500, ipam: { dataDir: join(owned.dir, `ipam-${i}`) } }),
  });
  return { dir: owned.dir, pluginFile, nodes: nodes.map((n, i) => ({ ...n, macvlan: network('macvlan', n, i), hostGw: network('host-gw', n, i) })) };
}

let podSeq = 0;
function makePods(count) {
  const pods = Array.from({ length: count }, () => {
    const name = `${prefix}p${podSeq++}`;
    return { name, path: nsPath(name), containerId: name, result: null };
  });
  createNetns(pods.map((p) => p.name));
  return pods;
}

/** One CNI call as a runtime makes it: the plugin in the node's netns, CNI_* env, config on stdin. */
async function cni(ctx, node, config, verb, pod, { wrap = [], env = {} } = {}) {
  const argv = [...wrap, NSENTER, `--net=${nsPath(node.ns)}`, '--', process.execPath, ctx.pluginFile];
  const input = { ...config, ...(verb === 'DEL' && pod.result ? { prevResult: pod.result } : {}) };
  const r = await timedRun(argv, {
    env: { PATH: TOOL_PATH, CNI_COMMAND: verb, CNI_CONTAINERID: pod.containerId, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...env },
    input: JSON.stringify(input),
  });
  if (r.code !== 0) throw new Error(`${config.mode} ${verb} ${pod.containerId} exited ${r.code}: ${(r.stdout + r.stderr).trim().slice(-600)}`);
  if (verb === 'ADD') pod.result = JSON.parse(r.stdout);
  return r;
}

// ---- (a) ADD/DEL latency and processes per call, macvlan beside host-gw ----
async function latency(ctx) {
  const node = ctx.nodes[0];
  const modes = [['macvlan', node.macvlan], ['host-gw', node.hostGw]];
  for (const [, config] of modes) {
    for (const pod of makePods(WARMUP)) {
      await cni(ctx, node, config, 'ADD', pod);
      await cni(ctx, node, config, 'DEL', pod);
      deleteNetns([pod.name]);
    }
  }
  const ms = Object.fromEntries(modes.map(([m]) => [m, { ADD: [], DEL: [] }]));
  for (let i = 0; i < opts.iterations; i++) {
    const order = i % 2 === 0 ? modes : [...modes].reverse();
    for (const [m, config] of order) {
      const [pod] = makePods(1);
      ms[m].ADD.push((await cni(ctx, node, config, 'ADD', pod)).ms);
      ms[m].DEL.push((await cni(ctx, node, config, 'DEL', pod)).ms);
      deleteNetns([pod.name]);
    }
  }
  const procs = {};
  for (const [m, config] of modes) {
    procs[m] = { ADD: [], DEL: [], straceADD: [], straceDEL: [] };
    for (let i = 0; i < COUNT_RUNS; i++) {
      const [pod] = makePods(1);
      for (const verb of ['ADD', 'DEL']) {
        const traceFile = join(ctx.dir, `strace-${m}-${verb}-${i}.log`);
        const wrap = STRACE ? [STRACE, '-f', '-e', 'trace=execve', '-qq', '-o', traceFile] : [];
        const r = await cni(ctx, node, { ...config, logLevel: 'debug' }, verb, pod, { wrap });
        procs[m][verb].push(spawnedFromLog(r.stderr));
        if (STRACE) {
          const byPid = execsByPid(readFileSync(traceFile, 'utf8'));
          const root = [...byPid.keys()][0]; // nsenter, which execs node: the plugin itself
          procs[m][`strace${verb}`].push([...byPid.entries()].filter(([pid]) => pid !== root).map(([, chain]) => chain.join('→')));
        }
      }
      deleteNetns([pod.name]);
    }
  }
  return Object.fromEntries(modes.map(([m]) => [m, { ADD: summary(ms[m].ADD), DEL: summary(ms[m].DEL), processes: procs[m] }]));
}

// ---- (b) throughput: pod -> pod across the nodes, node -> node on the underlay ----
function startServer(ns, port) {
  const child = spawn(NSENTER, [`--net=${nsPath(ns)}`, '--', IPERF, '-s', '-p', String(port)], { stdio: 'ignore', env: { PATH: TOOL_PATH } });
  owned.servers.push(child);
  return child;
}

async function iperf(ns, server, port) {
  for (let attempt = 0; ; attempt++) {
    const r = await timedRun([NSENTER, `--net=${nsPath(ns)}`, '--', IPERF, '-c', server, '-p', String(port), '-t', String(opts.seconds), '-J'], { env: { PATH: TOOL_PATH } });
    const got = r.code === 0 ? JSON.parse(r.stdout).end?.sum_received?.bits_per_second : undefined;
    if (got !== undefined) return got / 1e9;
    // The server may still be starting: it listens within a few ms.
    if (attempt >= 20) throw new Error(`iperf3 -c ${server} in ${ns}: exit ${r.code}: ${(r.stdout + r.stderr).slice(-400)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function throughput(ctx) {
  const [n1, n2] = ctx.nodes;
  const [a, b] = makePods(2);
  await cni(ctx, n1, n1.macvlan, 'ADD', a);
  await cni(ctx, n2, n2.macvlan, 'ADD', b);
  const podB = b.result.ips[0].address.split('/')[0];
  startServer(b.name, 5201);
  startServer(n2.ns, 5202);
  const gbps = { pod: [], underlay: [] };
  for (let i = 0; i < opts.runs; i++) {
    const order = i % 2 === 0 ? ['pod', 'underlay'] : ['underlay', 'pod'];
    for (const path of order) {
      progress(`iperf3 ${path} run ${i + 1}/${opts.runs} (${opts.seconds} s)`);
      gbps[path].push(path === 'pod' ? await iperf(a.name, podB, 5201) : await iperf(n1.ns, n2.ip, 5202));
    }
  }
  for (const s of owned.servers.splice(0)) s.kill('SIGKILL');
  await cni(ctx, n1, n1.macvlan, 'DEL', a);
  await cni(ctx, n2, n2.macvlan, 'DEL', b);
  return { pod: summary(gbps.pod), underlay: summary(gbps.underlay), runs: gbps };
}

function report(r) {
  const say = (line = '') => process.stdout.write(line + '\n');
  say(`vlan benchmark — ${r.machine.cpus} CPU, kernel ${r.machine.kernel}, node ${process.version}, load ${r.machine.loadStart} -> ${r.machine.loadEnd}`);
  say();
  say(`(a) CNI call latency, ms (${opts.iterations} ADD+DEL pairs per mode, interleaved, same node and bundle; wall time spawn -> exit)`);
  say(table(['mode', 'ADD p50', 'ADD p95', 'DEL p50', 'DEL p95', 'processes ADD/DEL'],
    Object.entries(r.latency).map(([m, x]) => [m, fmt(x.ADD.p50), fmt(x.ADD.p95), fmt(x.DEL.p50), fmt(x.DEL.p95), `${x.processes.ADD[0]}/${x.processes.DEL[0]}`])));
  for (const [m, x] of Object.entries(r.latency)) {
    if (x.processes.straceADD.length) say(`  ${m}: strace ADD ${x.processes.straceADD[0].join(', ')} | DEL ${x.processes.straceDEL[0].join(', ') || 'none'}`);
  }
  say('  macvlan reads its master\'s MTU on every ADD (to check the pod MTU against it): in a simulated node that is');
  say('  one `ip -j link show` process (its /sys is the host\'s); on a real node /sys/class/net is read without one.');
  say();
  say(`(b) throughput across two nodes, Gbit/s (iperf3, ${opts.runs} x ${opts.seconds} s per path, alternating)`);
  say(table(['path', 'median', 'min', 'max'], [
    ['pod -> pod (macvlan bridge, node 1 -> node 2)', fmt(r.throughput.pod.p50, 2), fmt(r.throughput.pod.min, 2), fmt(r.throughput.pod.max, 2)],
    ['node -> node (the underlay itself)', fmt(r.throughput.underlay.p50, 2), fmt(r.throughput.underlay.min, 2), fmt(r.throughput.underlay.max, 2)],
  ]));
  say(`  macvlan / underlay: ${fmt(r.throughput.pod.p50 / r.throughput.underlay.p50, 2)}`);
}

async function main() {
  const loadStart = loadavg()[0].toFixed(2);
  const ctx = setup();
  progress(`namespaces ${prefix}*; latency: ${opts.iterations} pairs per mode`);
  const lat = await latency(ctx);
  const tput = await throughput(ctx);
  const r = { machine: { cpus: cpus().length, kernel: release(), loadStart, loadEnd: loadavg()[0].toFixed(2) }, latency: lat, throughput: tput };
  if (opts.json) process.stdout.write(JSON.stringify(r, roundNumbers, 2) + '\n');
  else report(r);
}

try {
  await main();
} catch (e) {
  process.stderr.write(`vlan: ${e.stack ?? e}\n`);
  cleanup();
  process.exit(1);
}
