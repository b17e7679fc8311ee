#!/usr/bin/env node
// containerd's RunPodSandbox with testcni next to the reference plugins, in one run: one
// throwaway containerd instance (Debian's 1.6, runc) per network, each in its own node network
// namespace with its own conflist, asked over CRI in turn (the order rotating every round). Per
// testcni mode: testcni host-gw and the reference bridge + host-local (the target's baseline);
// testcni macvlan and the reference macvlan + host-local, on nodes wired to a node network. What
// a pod start costs a kubelet, not only the CNI call. Prints figures and an informational target;
// exits 0 once it has measured (2: cannot run here). Removes everything it made, also on error or
// Ctrl-C.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, cpus, release, loadavg } from 'node:os';
import { spawnSync } from 'node:child_process';
import { register } from 'tsx/esm/api';
import { summary, fmt, table, parseArgs, fail, roundNumbers, which } from './lib.mjs';

const MODES_HERE = ['host-gw', 'macvlan'];
const USAGE = `usage: node bench/containerd.mjs [--iterations N] [--modes LIST] [--json]   (as root)
  --iterations N   pods started (and removed) per network, in turn (default 20)
  --modes LIST     testcni modes, comma-separated, each beside its reference plugin
                   (default ${MODES_HERE.join(',')}; the bridge baseline always runs)
  --bundle         run testcni as the bundle (node dist/testcni.cjs) instead of the single
                   executable dist/testcni, which is what a node gets in /opt/cni/bin
  --json           print the figures as one JSON document instead of tables`;
const opts = parseArgs(process.argv.slice(2), {
  iterations: { default: 20, min: 1, max: 200 },
  modes: { type: 'string', default: MODES_HERE.join(',') },
  bundle: { type: 'flag', default: false },
  json: { type: 'flag', default: false },
}, USAGE);
const modes = opts.modes.split(',').map((m) => m.trim()).filter(Boolean);
for (const m of modes) if (!MODES_HERE.includes(m)) fail(`--modes: ${m} is not one of ${MODES_HERE.join(', ')}`);
const WARMUP = 3; // pods per runtime before anything is counted
const TARGET_RATIO = 1.2;
const BASELINE = 'bridge+host-local';

register();
const { Containerd, containerdSkipReason } = await import('../test/helpers/containerd.ts');
const { buildPauseImage } = await import('../test/helpers/oci-image.ts');
const { addNetns, delNetns, PLUGIN, EXECUTABLE } = await import('../test/helpers/netns.ts');
const TESTCNI = opts.bundle ? PLUGIN : EXECUTABLE;
if (!existsSync(TESTCNI)) fail(`containerd bench: needs ${TESTCNI} (npm run build)`);
const why = containerdSkipReason(['bridge', 'host-local', ...(modes.includes('macvlan') ? ['macvlan'] : [])]);
if (why) fail(`containerd bench: ${why}`);
const IP = which('ip');
const NSENTER = which('nsenter');
const PING = which('ping');

const progress = (msg) => process.stderr.write(`containerd bench: ${msg}\n`);
// "tcr-" + 4 base36 characters: apart from the tests' uniquePrefix and the other benchmarks
const prefix = `tcr-${(process.pid % 1296).toString(36).padStart(2, '0')}${Math.floor(Math.random() * 1296).toString(36).padStart(2, '0')}`;
const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
const owned = { runtimes: [], netns: [] };
let cleanedUp = false;
function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const r of owned.runtimes) r.destroy();
  for (const n of owned.netns) delNetns(n);
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(sig, () => {
    progress(`${sig}: cleaning up`);
    cleanup();
    process.exit(code);
  });
}

function netns(tag) {
  const name = `${prefix}${tag}`;
  addNetns(name);
  owned.netns.push(name);
  spawnSync(IP, ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

const ipBatch = (ns, lines) => {
  const r = spawnSync(IP, ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n', encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip -n ${ns} -batch: ${r.stderr}`);
};

/** A node, and for a mode on the node network its eth0 (198.18.0.11/24) wired to a "wire"
 *  namespace holding the gateway (.1) and standing for another host: where a new pod must
 *  answer from. */
function node(tag, wired) {
  const nodeNs = netns(`n${tag}`);
  if (!wired) return { nodeNs, reachFrom: nodeNs };
  const wire = netns(`w${tag}`);
  ipBatch(wire, ['link add br0 type bridge', 'addr add 198.18.0.1/24 dev br0', 'link set br0 up', `link add up0 type veth peer name eth0 netns ${nodeNs}`, 'link set up0 master br0 up']);
  ipBatch(nodeNs, ['link set eth0 up', 'addr add 198.18.0.11/24 dev eth0', 'route add default via 198.18.0.1']);
  return { nodeNs, reachFrom: wire };
}

/** One ICMP echo right after the pod started, from where its mode says it answers. */
function pingsAtOnce(fromNs, ip) {
  return spawnSync(NSENTER, [`--net=/var/run/netns/${fromNs}`, '--', PING, '-n', '-q', '-c', '1', '-W', '1', ip]).status === 0;
}

const RANGE = { rangeStart: '198.18.0.100', rangeEnd: '198.18.0.250' };
const NETWORKS = [
  {
    name: 'testcni host-gw', mode: 'host-gw', wired: false, reference: [],
    plugin: (d) => ({ type: 'testcni', subnet: '10.244.0.0/16', stateDir: join(d, 'state'), ipam: { dataDir: join(d, 'ipam') } }),
  },
  {
    name: BASELINE, mode: null, wired: false, reference: ['bridge', 'host-local'],
    plugin: (d) => ({ type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: '10.245.0.0/24' }]], dataDir: join(d, 'ipam') } }),
  },
  {
    name: 'testcni macvlan', mode: 'macvlan', wired: true, reference: [],
    plugin: (d) => ({ type: 'testcni', mode: 'macvlan', subnet: '198.18.0.0/24', macvlan: { master: 'eth0' }, stateDir: join(d, 'state'), ipam: { ...RANGE, gateway: '198.18.0.1', dataDir: join(d, 'ipam') } }),
  },
  {
    name: 'macvlan+host-local', mode: 'macvlan', wired: true, reference: ['macvlan', 'host-local'],
    plugin: (d) => ({ type: 'macvlan', master: 'eth0', mode: 'bridge', ipam: { type: 'host-local', ranges: [[{ subnet: '198.18.0.0/24', ...RANGE, gateway: '198.18.0.1' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(d, 'ipam') } }),
  },
];
const plugins = NETWORKS.filter((p) => p.mode === null || modes.includes(p.mode));

try {
  progress('building the pause image');
  const image = buildPauseImage(join(dir, 'image'));
  for (const [i, p] of plugins.entries()) {
    progress(`starting containerd for ${p.name}`);
    Object.assign(p, node(String(i), p.wired));
    const pdir = mkdtempSync(join(dir, `p${i}-`));
    const conflist = { cniVersion: '1.0.0', name: `${prefix}-${i}`, plugins: [p.plugin(pdir)] };
    p.runtime = await Containerd.start({ prefix: `${prefix}${i}`, nodeNs: p.nodeNs, conflist, referencePlugins: p.reference, image, testcni: TESTCNI });
    owned.runtimes.push(p.runtime);
    p.run = [];
    p.teardown = [];
    p.atOnce = 0;
  }
  const load0 = loadavg()[0];
  let seq = 0;
  const onePod = async (p, counted) => {
    const n = seq++;
    const t0 = performance.now();
    const id = await p.runtime.runPod({ name: `pod${n}`, uid: `${prefix}-${n}`, namespace: 'bench' });
    const ran = performance.now() - t0;
    const { ip } = await p.runtime.status(id);
    const reached = pingsAtOnce(p.reachFrom, ip);
    const t1 = performance.now();
    await p.runtime.cri.stopPodSandbox(id);
    await p.runtime.cri.removePodSandbox(id);
    const removed = performance.now() - t1;
    if (!counted) return;
    p.run.push(ran);
    p.teardown.push(removed);
    if (reached) p.atOnce++;
  };
  progress(`warm-up: ${WARMUP} pods each`);
  for (let i = 0; i < WARMUP; i++) for (const p of plugins) await onePod(p, false);
  progress(`measuring: ${opts.iterations} pods each, in turn`);
  for (let i = 0; i < opts.iterations; i++) {
    const k = i % plugins.length; // who goes first rotates
    for (const p of [...plugins.slice(k), ...plugins.slice(0, k)]) await onePod(p, true);
  }
  const load1 = loadavg()[0];

  const base = plugins.find((p) => p.name === BASELINE);
  const ratio = (p, q) => summary(p.run).p50 / summary(q.run).p50;
  const pairs = plugins.filter((p) => p.name.startsWith('testcni ')).flatMap((p) => [
    { testcni: p, other: base, target: true },
    ...plugins.filter((q) => q !== base && !q.name.startsWith('testcni ') && q.mode === p.mode).map((q) => ({ testcni: p, other: q, target: false })),
  ]);
  const figures = {
    machine: { cpus: cpus().length, kernel: release(), node: process.version, load1m: { start: load0, end: load1 } },
    iterations: opts.iterations,
    testcni: opts.bundle ? 'bundle (node dist/testcni.cjs)' : 'single executable (dist/testcni)',
    networks: Object.fromEntries(plugins.map((p) => [p.name, {
      runPodSandbox: summary(p.run), stopAndRemove: summary(p.teardown), reachableAtOnce: `${p.atOnce}/${opts.iterations}`,
    }])),
    ratiosP50: pairs.map((x) => ({
      testcni: x.testcni.name, vs: x.other.name, ratio: ratio(x.testcni, x.other),
      ...(x.target ? { target: TARGET_RATIO, met: ratio(x.testcni, x.other) <= TARGET_RATIO } : {}),
    })),
  };
  if (opts.json) {
    process.stdout.write(JSON.stringify(figures, roundNumbers, 2) + '\n');
  } else {
    const row = (label, s) => [label, s.n, fmt(s.p50), fmt(s.p95), fmt(s.min), fmt(s.max)];
    console.log(`containerd RunPodSandbox, ${opts.iterations} pods per network, in turn, testcni as the ${opts.bundle ? 'bundle' : 'single executable'} (${cpus().length} CPUs, load ${fmt(load0, 2)} -> ${fmt(load1, 2)})\n`);
    console.log(table(['ms', 'n', 'p50', 'p95', 'min', 'max'], [
      ...plugins.map((p) => row(`RunPodSandbox ${p.name}`, summary(p.run))),
      ...plugins.map((p) => row(`Stop+Remove ${p.name}`, summary(p.teardown))),
    ]));
    console.log(`\na new pod answers one ping at once (from the node; macvlan: from another host): ${plugins.map((p) => `${p.name} ${p.atOnce}/${opts.iterations}`).join(', ')}`);
    for (const r of figures.ratiosP50) {
      console.log(`RunPodSandbox p50 ${r.testcni} / ${r.vs} = ${fmt(r.ratio, 2)}x${r.target ? ` (target <= ${TARGET_RATIO}x: ${r.met ? 'PASS' : 'MISS'})` : ''}`);
    }
  }
} catch (e) {
  process.stderr.write(`containerd bench: ${e.stack ?? e}\n`);
  cleanup();
  process.exit(1);
}
cleanup();
