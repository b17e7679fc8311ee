#!/usr/bin/env node
// containerd's RunPodSandbox with testcni next to the reference bridge + host-local plugins, in
// one run: two throwaway containerd instances (Debian's 1.6, runc), each in its own node network
// namespace with its own conflist, asked over CRI in alternation. What a pod start costs a
// kubelet, not only the CNI call. Prints figures and an informational target; exits 0 once it has
// measured (2: cannot run here). Removes everything it made, also on error or Ctrl-C.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, cpus, release, loadavg } from 'node:os';
import { spawnSync } from 'node:child_process';
import { register } from 'tsx/esm/api';
import { summary, fmt, table, parseArgs, fail, roundNumbers, which } from './lib.mjs';

const USAGE = `usage: node bench/containerd.mjs [--iterations N] [--json]   (as root)
  --iterations N   pods started (and removed) per plugin, alternating (default 20)
  --json           print the figures as one JSON document instead of tables`;
const opts = parseArgs(process.argv.slice(2), {
  iterations: { default: 20, min: 1, max: 200 },
  json: { type: 'flag', default: false },
}, USAGE);
const WARMUP = 3; // pods per runtime before anything is counted
const TARGET_RATIO = 1.2;

register();
const { Containerd, containerdSkipReason } = await import('../test/helpers/containerd.ts');
const { buildPauseImage } = await import('../test/helpers/oci-image.ts');
const { addNetns, delNetns } = await import('../test/helpers/netns.ts');
const why = containerdSkipReason(['bridge', 'host-local']);
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

function node(tag) {
  const name = `${prefix}${tag}`;
  addNetns(name);
  owned.netns.push(name);
  return name;
}

/** One ICMP echo from the node right after the pod started (issue 6 §2 looks at this). */
function pingsAtOnce(nodeNs, ip) {
  return spawnSync(NSENTER, [`--net=/var/run/netns/${nodeNs}`, '--', PING, '-n', '-q', '-c', '1', '-W', '1', ip]).status === 0;
}

const plugins = [
  {
    name: 'testcni',
    conflist: (d) => ({
      cniVersion: '1.0.0',
      name: `${prefix}-t`,
      plugins: [{ type: 'testcni', subnet: '10.244.0.0/16', stateDir: join(d, 'state'), ipam: { dataDir: join(d, 'ipam') } }],
    }),
    reference: [],
  },
  {
    name: 'bridge+host-local',
    conflist: (d) => ({
      cniVersion: '1.0.0',
      name: `${prefix}-r`,
      plugins: [{
        type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.245.0.0/24' }]], dataDir: join(d, 'ipam') },
      }],
    }),
    reference: ['bridge', 'host-local'],
  },
];

try {
  progress('building the pause image');
  const image = buildPauseImage(join(dir, 'image'));
  for (const [i, p] of plugins.entries()) {
    progress(`starting containerd for ${p.name}`);
    p.nodeNs = node(`n${i}`);
    spawnSync(IP, ['-n', p.nodeNs, 'link', 'set', 'lo', 'up']);
    const pdir = mkdtempSync(join(dir, `p${i}-`));
    p.runtime = await Containerd.start({ prefix: `${prefix}${i}`, nodeNs: p.nodeNs, conflist: p.conflist(pdir), referencePlugins: p.reference, image });
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
    const reached = pingsAtOnce(p.nodeNs, ip);
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
  progress(`measuring: ${opts.iterations} pods each, alternating`);
  for (let i = 0; i < opts.iterations; i++) {
    const order = i % 2 === 0 ? plugins : [...plugins].reverse();
    for (const p of order) await onePod(p, true);
  }
  const load1 = loadavg()[0];

  const [t, r] = plugins;
  const rs = { testcni: summary(t.run), reference: summary(r.run) };
  const ds = { testcni: summary(t.teardown), reference: summary(r.teardown) };
  const ratio = rs.testcni.p50 / rs.reference.p50;
  const figures = {
    machine: { cpus: cpus().length, kernel: release(), node: process.version, load1m: { start: load0, end: load1 } },
    iterations: opts.iterations,
    runPodSandbox: rs,
    stopAndRemove: ds,
    reachableAtOnce: { testcni: `${t.atOnce}/${opts.iterations}`, reference: `${r.atOnce}/${opts.iterations}` },
    ratioP50: ratio,
    target: { ratioP50: TARGET_RATIO, met: ratio <= TARGET_RATIO },
  };
  if (opts.json) {
    process.stdout.write(JSON.stringify(figures, roundNumbers, 2) + '\n');
  } else {
    const row = (label, s) => [label, s.n, fmt(s.p50), fmt(s.p95), fmt(s.min), fmt(s.max)];
    console.log(`containerd RunPodSandbox, ${opts.iterations} pods per plugin, alternating (${cpus().length} CPUs, load ${fmt(load0, 2)} -> ${fmt(load1, 2)})\n`);
    console.log(table(['ms', 'n', 'p50', 'p95', 'min', 'max'], [
      row('RunPodSandbox testcni', rs.testcni),
      row('RunPodSandbox bridge+host-local', rs.reference),
      row('Stop+Remove testcni', ds.testcni),
      row('Stop+Remove bridge+host-local', ds.reference),
    ]));
    console.log(`\nnode reaches the new pod with one ping at once: testcni ${t.atOnce}/${opts.iterations}, reference ${r.atOnce}/${opts.iterations}`);
    console.log(`RunPodSandbox p50 testcni / reference = ${fmt(ratio, 2)}x (target <= ${TARGET_RATIO}x: ${ratio <= TARGET_RATIO ? 'PASS' : 'MISS'})`);
  }
} catch (e) {
  process.stderr.write(`containerd bench: ${e.stack ?? e}\n`);
  cleanup();
  process.exit(1);
}
cleanup();
