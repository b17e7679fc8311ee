#!/usr/bin/env node
// Figures of the vxlan eBPF dataplane (issue 8), on throwaway network namespaces: an underlay
// bridge, two nodes set up by the vxlan mode's own node plan and pod plans (through the
// Executor, test/helpers/sim-node.ts), beside them two Flannel-style nodes (kernel VXLAN with
// static FDB and neighbour entries, pods on a bridge) as the baseline, and a host-gw node (its
// pod plans) for the same-node comparison. iperf3 pod -> pod throughput and ping latency,
// cross-node and same-node, against the underlay node -> node. Prints figures and the targets'
// ratios; always exits 0 once it has measured (2: cannot run here). Removes everything it made.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { cpus, release, loadavg } from 'node:os';
import { register } from 'tsx/esm/api';
import { ROOT, which, fmt, table, parseArgs, fail, roundNumbers } from './lib.mjs';

const USAGE = `usage: node bench/vxlan.mjs [--seconds S] [--runs R] [--pings N] [--json]   (as root)
  --seconds S  length of one iperf3 run (default 5)
  --runs R     iperf3 runs per path, interleaved across paths; the median is reported (default 3)
  --pings N    echo requests per path for the latency figure, 5 ms apart (default 400)
  --json       print the figures as one JSON document instead of tables`;
const opts = parseArgs(process.argv.slice(2), {
  seconds: { default: 5, min: 1, max: 60 },
  runs: { default: 3, min: 1, max: 20 },
  pings: { default: 400, min: 10, max: 5000 },
  json: { type: 'flag', default: false },
}, USAGE);

const TARGET = { crossVsUnderlay: 0.85, crossVsFdb: 1.05, sameVsBridge: 1.1 };
const OBJECT = join(ROOT, 'dist', 'bpf', 'vxlan.o');
const BPFFS = '/sys/fs/bpf';
const VNI = 13190;
const PORT = 8472;
const UNDERLAY_MTU = 1500;
const MTU = UNDERLAY_MTU - 50;

if (process.getuid?.() !== 0) fail('vxlan bench: needs root (network namespaces, BPF)');
for (const t of ['ip', 'tc', 'bridge', 'bpftool', 'ethtool', 'iperf3', 'ping', 'nsenter', 'mount', 'umount', 'mv', 'mkdir', 'rm']) {
  if (!which(t)) fail(`vxlan bench: needs ${t} (scripts/setup.sh installs it)`);
}
if (!existsSync(OBJECT)) fail(`vxlan bench: needs ${OBJECT} (npm run build, with clang installed)`);

register();
const { simNode, addPod } = await import('../test/helpers/sim-node.ts');
const { networkPinRoot } = await import('../planner/modes/vxlan/dataplane.ts');
const { derivedMac } = await import('../planner/names.ts');

// ---- resources this run creates, removed at the end whatever happens ----
// "tcv-" + 4 base36 characters: apart from the tests' uniquePrefix and the other benchmarks'.
const prefix = `tcv-${(process.pid % 1296).toString(36).padStart(2, '0')}${Math.floor(Math.random() * 1296).toString(36).padStart(2, '0')}`;
const owned = { netns: [], pids: new Set(), pinRoot: `${BPFFS}/testcni/${prefix}`, mountedBpffs: false, tmp: mkdtempSync(join(tmpdir(), `${prefix}-`)), undo: [] };
let cleanedUp = false;
const netnsPath = (name) => `/var/run/netns/${name}`;

function run(argv, { allowFail = false, input } = {}) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', input });
  if (r.status !== 0 && !allowFail) throw new Error(`${argv.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}
const inNs = (ns, argv, o) => run(['nsenter', `--net=${netnsPath(ns)}`, '--', ...argv], o);

/** Synchronous cleanup (also on Ctrl-C): servers by PID, namespaces, pins, the bpffs mount if ours. */
function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const pid of owned.pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (const fn of owned.undo.reverse()) {
    try { fn(); } catch { /* keep cleaning */ }
  }
  for (const ns of [...owned.netns].reverse()) run(['ip', 'netns', 'del', ns], { allowFail: true });
  rmSync(owned.pinRoot, { recursive: true, force: true });
  rmSync(owned.tmp, { recursive: true, force: true });
  if (existsSync(`${BPFFS}/testcni`) && readdirSync(`${BPFFS}/testcni`).length === 0) rmSync(`${BPFFS}/testcni`, { recursive: true });
  if (owned.mountedBpffs && readdirSync(BPFFS).every((f) => f === 'maps.debug' || f === 'progs.debug')) run(['umount', BPFFS], { allowFail: true });
  const left = run(['ip', 'netns', 'list'], { allowFail: true }).split('\n').filter((l) => l.startsWith(prefix));
  if (left.length > 0) process.stderr.write(`vxlan bench: could not remove netns: ${left.join(', ')}\n`);
}
process.on('exit', cleanup);
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(sig, () => {
    process.stderr.write(`vxlan bench: ${sig}: cleaning up\n`);
    cleanup();
    process.exit(code);
  });
}

function addNetns(name) {
  owned.netns.push(name);
  run(['ip', 'netns', 'add', name]);
  run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  inNs(name, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  return name;
}

// ---- underlay and nodes ----

const U = addNetns(`${prefix}u`);
run(['ip', '-n', U, 'link', 'add', 'br0', 'type', 'bridge']);
run(['ip', '-n', U, 'link', 'set', 'br0', 'up']);

function makeNode(tag, i) {
  const ns = addNetns(`${prefix}${tag}`);
  const ip = `198.18.0.${i}`;
  run(['ip', '-n', U, 'link', 'add', `u${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netnsPath(ns)]);
  run(['ip', '-n', U, 'link', 'set', `u${i}`, 'master', 'br0', 'up']);
  run(['ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  run(['ip', '-n', ns, 'link', 'set', 'eth0', 'mtu', String(UNDERLAY_MTU), 'up']);
  inNs(ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  return { ns, ip };
}

// Nodes run by the modes' own plans, through the Executor (as the agent and the plugin run them).
const DEVICE = 'testcni.vxlan';
const cleanups = { defer: (fn) => owned.undo.push(fn) };
function planNode(tag, i, mode) {
  const n = makeNode(tag, i);
  const node = simNode(cleanups, {
    mode, name: tag, ns: n.ns, underlayIp: n.ip, block: `10.244.${i}.0/24`, network: prefix, subnet: '10.244.0.0/16',
    stateDir: join(owned.tmp, tag), extra: mode === 'host-gw' ? { mtu: MTU } : {},
  });
  return { ...n, i, node, pods: 0 };
}
async function planPod(n) {
  const j = ++n.pods;
  const ns = addNetns(`${n.ns}p${j}`);
  const pod = await addPod(n.node, { name: ns, path: netnsPath(ns), containerId: `${ns}-c`, ip: `10.244.${n.i}.${j + 1}` });
  return { ns, ip: pod.ip };
}

// Flannel-style baseline: kernel VXLAN device with static FDB + neighbour entries, pods on a bridge.
const FLANNEL_DEV = 'flannel.1';
function fdbNode(tag, i) {
  const n = makeNode(tag, i);
  const mac = derivedMac(`flannel/${prefix}${tag}`);
  // Same wire format and offload settings as the eBPF nodes: zero outer UDP checksum.
  inNs(n.ns, ['ip', 'link', 'add', FLANNEL_DEV, 'address', mac, 'mtu', String(MTU), 'type', 'vxlan', 'id', '1',
    'local', n.ip, 'dev', 'eth0', 'dstport', String(PORT), 'nolearning', 'noudpcsum']);
  inNs(n.ns, ['ip', 'addr', 'add', `10.245.${i}.0/32`, 'dev', FLANNEL_DEV]);
  inNs(n.ns, ['ip', 'link', 'set', FLANNEL_DEV, 'up']);
  inNs(n.ns, ['ip', 'link', 'add', 'cni0', 'address', derivedMac(`cni0/${prefix}${tag}`), 'type', 'bridge']);
  inNs(n.ns, ['ip', 'addr', 'add', `10.245.${i}.1/24`, 'dev', 'cni0']);
  inNs(n.ns, ['ip', 'link', 'set', 'cni0', 'up']);
  return { ...n, i, mac, pods: 0 };
}
function fdbPeer(node, peer) {
  inNs(node.ns, ['ip', 'neigh', 'replace', `10.245.${peer.i}.0`, 'lladdr', peer.mac, 'dev', FLANNEL_DEV, 'nud', 'permanent']);
  inNs(node.ns, ['bridge', 'fdb', 'append', peer.mac, 'dev', FLANNEL_DEV, 'dst', peer.ip, 'self', 'permanent']);
  inNs(node.ns, ['ip', 'route', 'replace', `10.245.${peer.i}.0/24`, 'via', `10.245.${peer.i}.0`, 'dev', FLANNEL_DEV, 'onlink']);
}
function bridgePod(node) {
  const j = ++node.pods;
  const ns = addNetns(`${node.ns}p${j}`);
  const host = `veth${j}`;
  const ip = `10.245.${node.i}.${j + 1}`;
  inNs(ns, ['ip', 'link', 'add', 'eth0', 'mtu', String(MTU), 'type', 'veth', 'peer', 'name', host, 'mtu', String(MTU), 'netns', netnsPath(node.ns)]);
  inNs(ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
  inNs(ns, ['ip', 'route', 'add', 'default', 'via', `10.245.${node.i}.1`]);
  inNs(node.ns, ['ip', 'link', 'set', host, 'master', 'cni0', 'up']);
  return { ns, ip };
}

function setTxOffload(on) {
  for (const n of [e1, e2]) inNs(n.ns, ['ethtool', '-K', DEVICE, 'tx', on ? 'on' : 'off']);
  for (const n of [k1, k2]) inNs(n.ns, ['ethtool', '-K', FLANNEL_DEV, 'tx', on ? 'on' : 'off']);
}

// ---- measurements ----

const servers = new Map();
function startServer(ns) {
  if (servers.has(ns)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${netnsPath(ns)}`, '--', 'iperf3', '-s', '-p', '5201', '--forceflush'], { stdio: ['ignore', 'pipe', 'pipe'] });
    owned.pids.add(child.pid);
    servers.set(ns, child);
    let out = '';
    const timer = setTimeout(() => reject(new Error(`iperf3 server in ${ns} not ready: ${out}`)), 5000);
    const onData = (b) => {
      out += b;
      if (/Server listening/.test(out)) { clearTimeout(timer); resolve(); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
  });
}

function iperf(from, to) {
  const r = JSON.parse(inNs(from.ns, ['iperf3', '-c', to.ip, '-p', '5201', '-t', String(opts.seconds), '-J'], { allowFail: true }) || '{}');
  if (r.error || !r.end) throw new Error(`iperf3 ${from.ns} -> ${to.ip}: ${r.error ?? 'no result'}`);
  return { gbps: r.end.sum_received.bits_per_second / 1e9, retransmits: r.end.sum_sent.retransmits ?? 0 };
}

function pingRtt(from, to) {
  const out = inNs(from.ns, ['ping', '-n', '-q', '-c', String(opts.pings), '-i', '0.005', '-W', '1', to.ip], { allowFail: true });
  const m = out.match(/= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/);
  const loss = Number(out.match(/([\d.]+)% packet loss/)?.[1] ?? 100);
  return m ? { avgUs: Number(m[2]) * 1000, mdevUs: Number(m[4]) * 1000, loss } : { avgUs: NaN, mdevUs: NaN, loss };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/** Every path measured `runs` times, paths interleaved so that background load spreads evenly. */
async function measure(paths) {
  for (const p of paths) {
    await startServer(p.to.ns);
    if (!/ 0% packet loss/.test(inNs(p.from.ns, ['ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '1', p.to.ip], { allowFail: true }))) {
      throw new Error(`${p.name}: ${p.to.ip} does not answer`);
    }
  }
  const samples = new Map(paths.map((p) => [p.name, []]));
  for (let r = 0; r < opts.runs; r++) for (const p of paths) samples.get(p.name).push(iperf(p.from, p.to));
  return paths.map((p) => {
    const s = samples.get(p.name);
    const gbps = s.map((x) => x.gbps);
    return { name: p.name, gbps: median(gbps), min: Math.min(...gbps), max: Math.max(...gbps), retransmits: median(s.map((x) => x.retransmits)), ...pingRtt(p.from, p.to) };
  });
}

// ---- run ----

const load = { start: loadavg()[0] };
const mounted = spawnSync('stat', ['-f', '-c', '%T', BPFFS], { encoding: 'utf8' }).stdout.trim() === 'bpf_fs';
if (!mounted) {
  run(['mount', '-t', 'bpf', 'bpf', BPFFS]);
  owned.mountedBpffs = true;
}
const e1 = planNode('e1', 1, 'vxlan');
const e2 = planNode('e2', 2, 'vxlan');
for (const n of [e1, e2]) await n.node.reconcile([e1.node.record, e2.node.record]);
const [e1a, e1b, e2a] = [await planPod(e1), await planPod(e1), await planPod(e2)];
const h1 = planNode('h1', 5, 'host-gw');
const h2 = planNode('h2', 6, 'host-gw');
for (const n of [h1, h2]) await n.node.reconcile([h1.node.record, h2.node.record]);
const [h1a, h1b, h2a] = [await planPod(h1), await planPod(h1), await planPod(h2)];
const k1 = fdbNode('k1', 3);
const k2 = fdbNode('k2', 4);
fdbPeer(k1, k2);
fdbPeer(k2, k1);
const [k1a, k1b, k2a] = [bridgePod(k1), bridgePod(k1), bridgePod(k2)];

const underlay = { name: 'underlay node -> node', from: { ns: e1.ns }, to: { ns: e2.ns, ip: e2.ip } };
const crossEbpf = { name: 'vxlan eBPF pod -> pod', from: e1a, to: e2a };
const crossFdb = { name: 'kernel VXLAN + FDB pod -> pod', from: k1a, to: k2a };
const sameEbpf = { name: 'redirect_peer pod -> pod', from: e1a, to: e1b };
const sameBridge = { name: 'bridge pod -> pod (L2)', from: k1a, to: k1b };
const sameHostGw = { name: 'host-gw bridge pod -> pod', from: h1a, to: h1b };
const crossHostGw = { name: 'host-gw pod -> pod, routed (no tunnel)', from: h1a, to: h2a };

const results = {};
setTxOffload(false);
results.txOff = await measure([underlay, crossEbpf, crossFdb, crossHostGw, sameEbpf, sameBridge, sameHostGw]);
setTxOffload(true);
results.txOn = await measure([crossEbpf, crossFdb, crossHostGw]);
load.end = loadavg()[0];
for (const child of servers.values()) child.kill('SIGKILL');

// ---- report ----

const byName = (rows, name) => rows.find((r) => r.name === name);
function ratios(rows, underlayRow) {
  const e = byName(rows, crossEbpf.name);
  const f = byName(rows, crossFdb.name);
  return { crossVsUnderlay: e.gbps / underlayRow.gbps, crossVsFdb: e.gbps / f.gbps };
}
const underlayRow = byName(results.txOff, underlay.name);
const figures = {
  machine: { cpus: cpus().length, kernel: release(), load },
  options: opts,
  txOff: {
    rows: results.txOff, ...ratios(results.txOff, underlayRow),
    sameVsBridge: byName(results.txOff, sameEbpf.name).gbps / byName(results.txOff, sameBridge.name).gbps,
    sameVsHostGw: byName(results.txOff, sameEbpf.name).gbps / byName(results.txOff, sameHostGw.name).gbps,
  },
  txOn: { rows: results.txOn, ...ratios(results.txOn, underlayRow) },
  targets: TARGET,
};

if (opts.json) {
  process.stdout.write(JSON.stringify(figures, roundNumbers, 2) + '\n');
} else {
  const verdict = (x, t) => `${fmt(x, 2)}x (target >= ${t}x: ${x >= t ? 'met' : 'NOT met'})`;
  const rowsOf = (rows) => rows.map((r) => [r.name, fmt(r.gbps, 2), `${fmt(r.min, 2)}-${fmt(r.max, 2)}`, String(r.retransmits), fmt(r.avgUs, 0), fmt(r.mdevUs, 0), `${r.loss}%`]);
  const header = ['path', 'Gbit/s', 'range', 'retr', 'rtt us', 'mdev', 'loss'];
  const say = (s = '') => process.stdout.write(`${s}\n`);
  say(`testcni vxlan dataplane benchmark: ${cpus().length} CPUs, linux ${release()}, load avg ${fmt(load.start, 2)} -> ${fmt(load.end, 2)}`);
  say(`iperf3 -t ${opts.seconds}, median of ${opts.runs} runs per path (interleaved); ping ${opts.pings} x 5 ms; MTU ${UNDERLAY_MTU} underlay, ${MTU} pods; VNI ${VNI}, port ${PORT}, zero outer UDP checksum on both VXLANs`);
  say();
  say('(a) tx checksum offload OFF on the VXLAN devices (the issue\'s setting: txChecksumOffload false, and auto before Linux 5.7):');
  say(table(header, rowsOf(results.txOff)));
  say(`    cross-node eBPF / underlay:       ${verdict(figures.txOff.crossVsUnderlay, TARGET.crossVsUnderlay)}`);
  say(`    cross-node eBPF / kernel FDB:     ${verdict(figures.txOff.crossVsFdb, TARGET.crossVsFdb)}`);
  say(`    same-node redirect_peer / host-gw bridge: ${verdict(figures.txOff.sameVsHostGw, TARGET.sameVsBridge)}`);
  say(`    same-node redirect_peer / L2 bridge:      ${verdict(figures.txOff.sameVsBridge, TARGET.sameVsBridge)}`);
  say();
  say('(b) tx checksum offload ON on both VXLAN devices (TSO through the tunnel; auto from Linux 5.7, the default):');
  say(table(header, rowsOf(results.txOn)));
  say(`    cross-node eBPF / underlay:       ${verdict(figures.txOn.crossVsUnderlay, TARGET.crossVsUnderlay)}`);
  say(`    cross-node eBPF / kernel FDB:     ${verdict(figures.txOn.crossVsFdb, TARGET.crossVsFdb)}`);
}
cleanup();
