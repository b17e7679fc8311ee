#!/usr/bin/env node
// macvlan figures, in one run and one namespace setup: pod -> pod throughput across two nodes
// against the underlay itself (node -> node), with iperf3; and ADD/DEL latency and processes per
// call of macvlan beside host-gw's, on the same node with the same plugin bundle. Prints figures;
// always exits 0 once it has measured (2: cannot run here).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, release, loadavg } from 'node:os';
import { PLUGIN, TOOL_PATH, which, timedRun, summary, fmt, table, parseArgs, fail, roundNumbers } from './lib.mjs';
import { Scratch, nsPath } from './scratch.mjs';

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

const progress = (msg) => process.stderr.write(`vlan: ${msg}\n`);

// ---- what this run creates, removed at the end whatever happens ----
const scratch = new Scratch('vlan');
const { prefix } = scratch;

// ---- the cluster: an underlay bridge, two nodes on it ----
const GATEWAY = '198.18.0.1';
const NODES = [{ ip: '198.18.0.11', range: ['198.18.0.128', '198.18.0.189'] }, { ip: '198.18.0.12', range: ['198.18.0.190', '198.18.0.250'] }];

function setup() {
  const u = `${prefix}u`;
  const nodes = NODES.map((n, i) => ({ ...n, ns: `${prefix}n${i + 1}` }));
  scratch.createNetns([u, ...nodes.map((n) => n.ns)]);
  scratch.ip(['-n', u, '-batch', '-'], ['link add br0 type bridge', `addr add ${GATEWAY}/24 dev br0`, 'link set br0 up',
    ...nodes.flatMap((n, i) => [`link add up${i} type veth peer name eth0 netns ${n.ns}`, `link set up${i} master br0 up`])].join('\n') + '\n');
  for (const n of nodes) scratch.ip(['-n', n.ns, '-batch', '-'], ['link set eth0 up', `addr add ${n.ip}/24 dev eth0`, `route add default via ${GATEWAY}`].join('\n') + '\n');
  const network = (mode, node, i) => ({
    cniVersion: '1.1.0', name: `${prefix}${mode}`, type: 'testcni', stateDir: join(scratch.dir, `state-${i}`),
    ...(mode === 'macvlan'
      ? { mode, subnet: '198.18.0.0/24', macvlan: { master: 'eth0', mode: 'bridge' },
          ipam: { rangeStart: node.range[0], rangeEnd: node.range[1], gateway: GATEWAY, dataDir: join(scratch.dir, `ipam-${i}`) } }
      : { mode, subnet: '10.244.0.0/16', bridge: `${prefix}b`.slice(0, 15), mtu: 1500, ipam: { dataDir: join(scratch.dir, `ipam-${i}`) } }),
  });
  return { nodes: nodes.map((n, i) => ({ ...n, macvlan: network('macvlan', n, i), hostGw: network('host-gw', n, i) })) };
}

// ---- (a) ADD/DEL latency and processes per call, macvlan beside host-gw ----
function latency(ctx) {
  const node = ctx.nodes[0];
  return scratch.modeLatency(node, [['macvlan', node.macvlan], ['host-gw', node.hostGw]], { iterations: opts.iterations, warmup: WARMUP, countRuns: COUNT_RUNS });
}

// ---- (b) throughput: pod -> pod across the nodes, node -> node on the underlay ----
function startServer(ns, port) {
  const child = spawn(NSENTER, [`--net=${nsPath(ns)}`, '--', IPERF, '-s', '-p', String(port)], { stdio: 'ignore', env: { PATH: TOOL_PATH } });
  scratch.servers.push(child);
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
  const [a, b] = scratch.makePods(2);
  await scratch.cni(n1, n1.macvlan, 'ADD', a);
  await scratch.cni(n2, n2.macvlan, 'ADD', b);
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
  for (const s of scratch.servers.splice(0)) s.kill('SIGKILL');
  await scratch.cni(n1, n1.macvlan, 'DEL', a);
  await scratch.cni(n2, n2.macvlan, 'DEL', b);
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
  scratch.cleanup();
  process.exit(1);
}
