#!/usr/bin/env node
// CNI call latency of the built plugin next to the reference Go `bridge` + `host-local` plugins
// and a do-nothing Node script (the floor every Node plugin pays), in one run and one netns
// setup. Each plugin is exec'd as a runtime execs it: `nsenter --mount=<node mnt> --net=<node
// netns> -- <argv>`, CNI_* env, config on stdin. The simulated node has a mount namespace of its
// own whose /sys is its netns's, as a real node's is: what a plugin reads from sysfs there costs
// what it costs on a node. Prints figures and informational targets; always exits 0 once it
// has measured (2: cannot run here).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, existsSync, copyFileSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { tmpdir, cpus, release, loadavg } from 'node:os';
import { ROOT, PLUGIN, TOOL_PATH, which, liveChildren, timedRun, summary, percentile, fmt, table, parseArgs, fail, roundNumbers, execsByPid, spawnedFromLog } from './lib.mjs';

const USAGE = `usage: node bench/cni-latency.mjs [--iterations N] [--concurrency C] [--json] [--plugin FILE]   (as root)
  --iterations N   sequential ADDs then DELs per plugin (default 40)
  --concurrency C  calls started at once in the burst phase (default 20)
  --json           print the figures as one JSON document instead of tables
  --plugin FILE    the testcni bundle to measure (default dist/testcni.cjs), e.g. to compare two builds;
                   a file not ending in .cjs is exec'd itself (the single executable dist/testcni)`;
const opts = parseArgs(process.argv.slice(2), {
  iterations: { default: 40, min: 1, max: 240 }, // every plugin's pool is a /24: at most ~250 leases at once
  concurrency: { default: 20, min: 1, max: 240 },
  json: { type: 'flag', default: false },
  plugin: { type: 'path', default: PLUGIN },
}, USAGE);

const CNI_DIR = '/usr/lib/cni';
const WARMUP = 3; // ADD+DEL pairs per plugin before anything is counted
const COUNT_RUNS = 5; // instrumented ADD+DEL pairs for the process count, peak RSS and CPU time
const TARGET_PROCS_PER_ADD = 2;
const TARGET_RSS_MB = 60;

// ---- preconditions (exit 2) ----
if (process.getuid?.() !== 0) fail('cni-latency: needs root (it creates network namespaces); run it as root');
for (const p of ['bridge', 'host-local']) {
  if (!existsSync(join(CNI_DIR, p))) {
    fail(`cni-latency: ${join(CNI_DIR, p)} is missing: install the reference plugins (Debian: apt-get install containernetworking-plugins)`);
  }
}
if (!existsSync(opts.plugin)) fail(`cni-latency: ${opts.plugin} is missing: run npm run build first`);
const IP = which('ip');
const NSENTER = which('nsenter');
if (!IP || !NSENTER) fail('cni-latency: needs ip (iproute2) and nsenter (util-linux)');
const STRACE = which('strace');
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

const progress = (msg) => process.stderr.write(`cni-latency: ${msg}\n`);

// ---- resources this run creates, removed at the end whatever happens ----
// "tcb-" + 4 base36 characters: the dash keeps it apart from test fixtures' uniquePrefix('b').
const prefix = `tcb-${(process.pid % 1296).toString(36).padStart(2, '0')}${Math.floor(Math.random() * 1296).toString(36).padStart(2, '0')}`;
const owned = { netns: new Set(), dir: null, mounts: [] };
let cleanedUp = false;

function deleteNetns(names) {
  if (names.length === 0) return;
  spawnSync(IP, ['-force', '-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join(''), stdio: ['pipe', 'ignore', 'ignore'] });
  for (const n of names) owned.netns.delete(n);
}

function cleanup() {
  if (cleanedUp || !IP) return;
  cleanedUp = true;
  for (const child of liveChildren) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  // Deleting the namespaces takes every veth and bridge in them along.
  deleteNetns([...owned.netns]);
  for (const m of [...owned.mounts].reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  if (owned.mounts.length > 0) rmSync(owned.mounts[0], { recursive: true, force: true });
  if (owned.dir) rmSync(owned.dir, { recursive: true, force: true });
  const left = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(prefix));
  if (left.length > 0) process.stderr.write(`cni-latency: could not remove netns: ${left.join(', ')}\n`);
}

process.on('exit', cleanup);
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(sig, () => {
    process.stderr.write(`cni-latency: ${sig}: cleaning up\n`);
    cleanup();
    process.exit(code);
  });
}

function createNetns(names) {
  for (const n of names) owned.netns.add(n);
  const r = spawnSync(IP, ['-batch', '-'], { input: names.map((n) => `netns add ${n}\n`).join(''), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip netns add failed: ${r.stderr}`);
}

// ---- the three plugins ----
function setup() {
  owned.dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const nodeNs = `${prefix}n`;
  createNetns([nodeNs]);
  spawnSync(IP, ['-n', nodeNs, 'link', 'set', 'lo', 'up']);
  const mountNs = nodeMountNamespace(`/var/run/netns/${nodeNs}`);
  // A copy taken now: a rebuild of dist/ during the run (npm test rebuilds it) cannot change or
  // remove what is measured. The CNI path loads nothing else from dist/.
  const bundle = opts.plugin.endsWith('.cjs');
  const pluginFile = join(owned.dir, bundle ? 'testcni.cjs' : 'testcni');
  copyFileSync(opts.plugin, pluginFile);
  const floorFile = join(owned.dir, 'floor.cjs');
  writeFileSync(floorFile, "'use strict';\nrequire('node:fs').readFileSync(0);\nprocess.stdout.write('{}');\n");
  // Equivalent networks: a node bridge carrying the gateway of a /24, one veth per pod.
  const testcniConfig = {
    cniVersion: '1.1.0', name: `${prefix}tc`, type: 'testcni', bridge: `${prefix}tb`, subnet: '10.244.0.0/16',
    stateDir: join(owned.dir, 'testcni-state'), ipam: { dataDir: join(owned.dir, 'testcni-ipam') }, ipMasq: false, mtu: 1500,
  };
  const referenceConfig = {
    cniVersion: '1.0.0', name: `${prefix}ref`, type: 'bridge', bridge: `${prefix}br`, isGateway: true, ipMasq: false, mtu: 1500,
    ipam: { type: 'host-local', subnet: '10.245.0.0/24', dataDir: join(owned.dir, 'host-local') },
  };
  const argv = bundle ? [process.execPath, pluginFile] : [pluginFile];
  const plugins = [
    { key: 'testcni', label: `testcni host-gw (${bundle ? 'node ' : ''}${relative(ROOT, opts.plugin) || opts.plugin})`, argv, config: testcniConfig },
    { key: 'reference', label: 'reference bridge+host-local (Go)', argv: [join(CNI_DIR, 'bridge')], config: referenceConfig },
    { key: 'floor', label: 'floor (no-op node script)', argv: [process.execPath, floorFile], config: testcniConfig },
  ];
  // The vxlan mode beside host-gw, same plugin, when its object and tools are here. Its node state
  // (bpffs on the node's /sys, device, maps, programs) is made by the warm-up's first ADD, inside
  // the node's own mount namespace, and goes with it.
  const object = join(dirname(opts.plugin), 'bpf', 'vxlan.o');
  if (existsSync(object) && ['bpftool', 'tc', 'ethtool'].every((t) => which(t))) {
    mkdirSync(join(owned.dir, 'bpf'));
    copyFileSync(object, join(owned.dir, 'bpf', 'vxlan.o'));
    const vxlanConfig = {
      cniVersion: '1.1.0', name: `${prefix}vx`, type: 'testcni', mode: 'vxlan', subnet: '10.246.0.0/16',
      stateDir: join(owned.dir, 'vxlan-state'), ipam: { dataDir: join(owned.dir, 'vxlan-ipam') }, ipMasq: false,
    };
    plugins.splice(1, 0, { key: 'vxlan', label: 'testcni vxlan (same build)', argv, config: vxlanConfig });
  } else progress(`vxlan not measured: needs ${object} (npm run build with clang), bpftool, tc and ethtool`);
  return { nodeNs, nodePath: `/var/run/netns/${nodeNs}`, mountNs, plugins };
}

/**
 * A persistent mount namespace for the node (a bind-mounted ns file in a private directory),
 * slave to the machine's mounts so pod netns files made later appear in it, with a sysfs of
 * the node's netns on /sys.
 */
function nodeMountNamespace(nodePath) {
  const dir = join('/run', `${prefix}-mnt`);
  const must = (argv) => {
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  };
  must(['mkdir', '-p', dir]);
  must(['mount', '--bind', dir, dir]);
  owned.mounts.push(dir);
  must(['mount', '--make-private', dir]);
  const file = join(dir, 'mnt');
  writeFileSync(file, '');
  must(['unshare', `--mount=${file}`, '--propagation', 'slave', 'true']);
  owned.mounts.push(file);
  must([NSENTER, `--mount=${file}`, `--net=${nodePath}`, '--', 'mount', '-t', 'sysfs', 'sysfs', '/sys']);
  return file;
}

let podSeq = 0;
/** Fresh pod namespaces (created untimed, before the calls that use them). */
function makePods(plugin, count, tag) {
  const pods = Array.from({ length: count }, () => {
    const n = podSeq++;
    const name = `${prefix}p${n}`;
    return { name, path: `/var/run/netns/${name}`, containerId: `${prefix}-${plugin.key}-${tag}-${n}`, result: null };
  });
  createNetns(pods.map((p) => p.name));
  return pods;
}

function releasePods(pods) {
  deleteNetns(pods.map((p) => p.name));
}

function cniEnv(verb, pod, extra = {}) {
  // What a runtime passes, nothing inherited: no NODE_EXTRA_CA_CERTS, no NODE_OPTIONS.
  return {
    PATH: TOOL_PATH, CNI_COMMAND: verb, CNI_CONTAINERID: pod.containerId, CNI_NETNS: pod.path,
    CNI_IFNAME: 'eth0', CNI_PATH: CNI_DIR, ...extra,
  };
}

function cniInput(plugin, verb, pod, configExtra = {}) {
  const config = { ...plugin.config, ...configExtra };
  // A runtime hands DEL the cached ADD result, as libcni does from cniVersion 0.4.0 on.
  if (verb === 'DEL' && pod.result && Object.keys(pod.result).length > 0) config.prevResult = pod.result;
  return JSON.stringify(config);
}

/** One CNI call exactly as a runtime execs it; `wrap` prefixes the argv (strace, time). */
async function call(ctx, plugin, verb, pod, { wrap = [], env = {}, configExtra = {}, onSpawn } = {}) {
  const argv = [...wrap, NSENTER, `--mount=${ctx.mountNs}`, `--net=${ctx.nodePath}`, '--', ...plugin.argv];
  const r = await timedRun(argv, { env: cniEnv(verb, pod, env), input: cniInput(plugin, verb, pod, configExtra), onSpawn });
  if (r.code !== 0) {
    throw new Error(`${plugin.key} ${verb} ${pod.containerId} exited ${r.code}: ${(r.stdout + r.stderr).trim().slice(-600)}`);
  }
  if (verb === 'ADD') {
    try {
      pod.result = JSON.parse(r.stdout);
    } catch {
      throw new Error(`${plugin.key} ADD printed no JSON result: ${r.stdout.slice(0, 300)}`);
    }
  }
  return r;
}

/** Rotating start position so no plugin always runs first (or right after a given other). */
const rotate = (list, i) => list.map((_, k) => list[(k + i) % list.length]);

async function warmUp(ctx) {
  for (const plugin of ctx.plugins) {
    const pods = makePods(plugin, WARMUP, 'w');
    for (const pod of pods) {
      await call(ctx, plugin, 'ADD', pod);
      await call(ctx, plugin, 'DEL', pod);
    }
    releasePods(pods);
  }
}

async function sequential(ctx, n) {
  const pods = new Map(ctx.plugins.map((p) => [p.key, makePods(p, n, 's')]));
  const ms = new Map(ctx.plugins.map((p) => [p.key, { ADD: [], DEL: [] }]));
  for (const verb of ['ADD', 'DEL']) {
    for (let i = 0; i < n; i++) {
      for (const plugin of rotate(ctx.plugins, i)) {
        const r = await call(ctx, plugin, verb, pods.get(plugin.key)[i]);
        ms.get(plugin.key)[verb].push(r.ms);
      }
    }
  }
  for (const list of pods.values()) releasePods(list);
  return ms;
}

async function burst(ctx, plugin, verb, pods) {
  const runs = await Promise.all(pods.map((pod) => call(ctx, plugin, verb, pod)));
  const first = runs.reduce((a, r) => (r.start < a ? r.start : a), runs[0].start);
  const last = runs.reduce((a, r) => (r.end > a ? r.end : a), runs[0].end);
  return { burstMs: Number(last - first) / 1e6, perCall: summary(runs.map((r) => r.ms)) };
}

async function concurrent(ctx, c) {
  const out = {};
  for (const plugin of ctx.plugins) {
    const pods = makePods(plugin, c, 'c');
    out[plugin.key] = { ADD: await burst(ctx, plugin, 'ADD', pods) };
    out[plugin.key].DEL = await burst(ctx, plugin, 'DEL', pods);
    releasePods(pods);
  }
  return out;
}

// ---- processes per call ----

async function processCounts(ctx, key) {
  const plugin = ctx.plugins.find((p) => p.key === key);
  const out = { strace: null, log: { ADD: [], DEL: [] }, notes: [] };
  if (STRACE) out.strace = { ADD: [], DEL: [] };
  else out.notes.push('strace not installed: process count from the plugin\'s own log only');
  let pods = makePods(plugin, COUNT_RUNS, 'x');
  for (const [i, pod] of pods.entries()) {
    for (const verb of ['ADD', 'DEL']) {
      const traceFile = join(ctx.dir, `strace-${verb}-${i}.log`);
      const wrap = STRACE ? [STRACE, '-f', '-e', 'trace=execve', '-qq', '-o', traceFile] : [];
      const r = await call(ctx, plugin, verb, pod, { wrap, env: { TESTCNI_LOG_LEVEL: 'debug' } });
      out.log[verb].push(spawnedFromLog(r.stderr));
      if (!STRACE) continue;
      const byPid = execsByPid(readFileSync(traceFile, 'utf8'));
      const rootPid = [...byPid.keys()][0]; // nsenter, which then execs node: the plugin itself
      const children = [...byPid.entries()].filter(([pid]) => pid !== rootPid);
      out.strace[verb].push({
        processes: children.length,
        execve: children.reduce((a, [, list]) => a + list.length, 0),
        chains: children.map(([, list]) => list.join('→')),
      });
    }
  }
  releasePods(pods);
  if ([...out.log.ADD, ...out.log.DEL].includes(null)) {
    // The env variable did not reach the log level: ask through the config instead, and say so.
    out.notes.push('TESTCNI_LOG_LEVEL=debug in the env produced no "done" log line (the config\'s logLevel, default ' +
      'info, replaces it), so the plugin\'s own count was read with "logLevel":"debug" in the config');
    out.log = { ADD: [], DEL: [] };
    pods = makePods(plugin, COUNT_RUNS, 'y');
    for (const pod of pods) {
      for (const verb of ['ADD', 'DEL']) {
        const r = await call(ctx, plugin, verb, pod, { env: { TESTCNI_LOG_LEVEL: 'debug' }, configExtra: { logLevel: 'debug' } });
        out.log[verb].push(spawnedFromLog(r.stderr));
      }
    }
    releasePods(pods);
  }
  return out;
}

// ---- peak RSS and CPU time ----

/** Peak RSS (KB) of the plugin process, and CPU ms (user+sys, its children included) when known. */
async function measureOne(ctx, plugin, verb, pod) {
  if (TIME) {
    const file = join(ctx.dir, 'time.txt');
    await call(ctx, plugin, verb, pod, { wrap: [TIME, '-f', '%M %U %S', '-o', file] });
    const [kb, user, sys] = readFileSync(file, 'utf8').trim().split('\n').pop().split(' ').map(Number);
    return { kb, cpuMs: (user + sys) * 1000 };
  }
  // No GNU time: poll the high-water mark while the process (nsenter, then node: one pid) runs.
  let kb = 0;
  let poll = null;
  const onSpawn = (child) => {
    poll = setInterval(() => {
      try {
        const m = readFileSync(`/proc/${child.pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+) kB/m);
        if (m) kb = Math.max(kb, Number(m[1]));
      } catch { /* gone */ }
    }, 1);
  };
  try {
    await call(ctx, plugin, verb, pod, { onSpawn });
  } finally {
    clearInterval(poll);
  }
  return { kb, cpuMs: NaN };
}

async function resources(ctx) {
  const out = { method: TIME ? '/usr/bin/time -f "%M %U %S"' : 'VmHWM polled from /proc/<pid>/status (GNU time not installed; no CPU time)' };
  for (const plugin of ctx.plugins) {
    const pods = makePods(plugin, COUNT_RUNS, 'm');
    const runs = { ADD: [], DEL: [] };
    for (const pod of pods) {
      for (const verb of ['ADD', 'DEL']) runs[verb].push(await measureOne(ctx, plugin, verb, pod));
    }
    releasePods(pods);
    out[plugin.key] = Object.fromEntries(['ADD', 'DEL'].map((verb) => [verb, {
      peakRssKb: Math.max(...runs[verb].map((x) => x.kb)),
      cpuMs: percentile(runs[verb].map((x) => x.cpuMs), 50), // 10 ms clock ticks: a coarse figure
    }]));
  }
  return out;
}

/** What NODE_EXTRA_CA_CERTS would cost each call if a runtime passed it on (it is set here). */
async function caCertsCost(ctx) {
  const certs = process.env.NODE_EXTRA_CA_CERTS;
  if (!certs) return null;
  const floor = ctx.plugins.find((p) => p.key === 'floor');
  const pods = makePods(floor, 10, 'k');
  const withCerts = [];
  const without = [];
  for (const pod of pods) {
    withCerts.push((await call(ctx, floor, 'ADD', pod, { env: { NODE_EXTRA_CA_CERTS: certs } })).ms);
    without.push((await call(ctx, floor, 'ADD', pod)).ms);
  }
  releasePods(pods);
  return { value: certs, floorWith: percentile(withCerts, 50), floorWithout: percentile(without, 50) };
}

function referenceVersion() {
  const r = spawnSync(join(CNI_DIR, 'bridge'), [], { env: { PATH: TOOL_PATH }, encoding: 'utf8' });
  const about = (r.stderr || r.stdout).trim().split('\n').map((l) => l.trim()).filter(Boolean);
  return `${join(CNI_DIR, 'bridge')} (${about.join('; ')})`;
}

// ---- report ----

function derive(seq, allCounts, rss, key = 'testcni') {
  const counts = allCounts[key];
  const p50 = (k, verb) => percentile(seq.get(k)[verb], 50);
  const gap = (verb) => {
    const overFloor = p50(key, verb) - p50('floor', verb);
    const reference = p50('reference', verb);
    return { overFloor, reference, ratio: overFloor / reference, pass: overFloor <= reference };
  };
  const procs = (verb) => {
    const s = counts.strace?.[verb];
    const logged = counts.log[verb].filter((x) => x !== null);
    if (s) return Math.max(...s.map((x) => x.processes));
    return logged.length > 0 ? Math.max(...logged) : NaN;
  };
  return {
    ADD: gap('ADD'),
    DEL: gap('DEL'),
    processesPerAdd: procs('ADD'),
    processesPerDel: procs('DEL'),
    rssMb: Math.max(rss[key].ADD.peakRssKb, rss[key].DEL.peakRssKb) / 1024,
  };
}

function report(r) {
  const { opts: o, ctx, seq, conc, rss, certs } = r;
  const lines = [];
  const say = (s = '') => lines.push(s);
  say(`CNI call latency: ${o.iterations} sequential ADDs then DELs per plugin (interleaved), then ${o.concurrency} at once`);
  say(`machine: ${cpus().length} CPUs, linux ${release()}, node ${process.version}; reference: ${r.refVersion}`);
  say(`each call: nsenter --net=<node netns> -- <plugin>, env PATH + CNI_* only; wall time spawn -> exit, in ms`);
  say(`load average (1 min): ${fmt(r.load.start, 2)} at start, ${fmt(r.load.end, 2)} at the end (other work on the machine inflates every figure)`);
  say();
  say(table(
    ['plugin', 'ADD p50', 'ADD p95', 'DEL p50', 'DEL p95', `ADD x${o.concurrency} burst`, `DEL x${o.concurrency} burst`],
    ctx.plugins.map((p) => {
      const s = seq.get(p.key);
      return [p.label, fmt(percentile(s.ADD, 50)), fmt(percentile(s.ADD, 95)), fmt(percentile(s.DEL, 50)), fmt(percentile(s.DEL, 95)),
        fmt(conc[p.key].ADD.burstMs), fmt(conc[p.key].DEL.burstMs)];
    }),
  ));
  say();
  say(`per call inside the ${o.concurrency}-call bursts (ms):`);
  say(table(
    ['plugin', 'ADD p50', 'ADD p95', 'DEL p50', 'DEL p95'],
    ctx.plugins.map((p) => [p.label, fmt(conc[p.key].ADD.perCall.p50), fmt(conc[p.key].ADD.perCall.p95),
      fmt(conc[p.key].DEL.perCall.p50), fmt(conc[p.key].DEL.perCall.p95)]),
  ));
  say();
  const verdict = (pass) => (pass ? 'PASS' : 'MISS');
  for (const key of Object.keys(r.derived)) {
    const d = r.derived[key];
    const counts = r.counts[key];
    const name = key === 'testcni' ? 'testcni host-gw' : `testcni ${key}`;
    for (const verb of ['ADD', 'DEL']) {
      const g = d[verb];
      say(`${name} ${verb} p50 - floor p50 = ${fmt(g.overFloor)} ms  vs reference ${verb} p50 ${fmt(g.reference)} ms  ` +
        `(ratio ${fmt(g.ratio, 2)})   target <= reference: ${verdict(g.pass)}`);
    }
    for (const verb of ['ADD', 'DEL']) {
      const s = counts.strace?.[verb];
      const logged = counts.log[verb].map((x) => (x === null ? '?' : x)).join(', ');
      const traced = s ? `strace: ${s[0].processes} processes, ${s[0].execve} execve (${s[0].chains.join(', ') || 'none'})` +
        (s.every((x) => x.processes === s[0].processes) ? '' : `; over ${s.length} runs: ${s.map((x) => x.processes).join(', ')}`) : 'strace: n/a';
      const target = verb === 'ADD' ? `   target <= ${TARGET_PROCS_PER_ADD}: ${verdict(d.processesPerAdd <= TARGET_PROCS_PER_ADD)}` : '';
      say(`processes spawned per ${name} ${verb}: ${verb === 'ADD' ? d.processesPerAdd : d.processesPerDel}  [${traced}; plugin log "spawned": ${logged}]${target}`);
    }
  }
  const d = r.derived.testcni;
  const counts = r.counts.testcni;
  const mb = (kb) => `${fmt(kb / 1024)} MB (${kb} KB)`;
  say(`testcni peak RSS: ADD ${mb(rss.testcni.ADD.peakRssKb)}, DEL ${mb(rss.testcni.DEL.peakRssKb)}   target <= ${TARGET_RSS_MB} MB: ${verdict(d.rssMb <= TARGET_RSS_MB)}`);
  say(`  for comparison: floor ${mb(rss.floor.ADD.peakRssKb)}, reference ADD ${mb(rss.reference.ADD.peakRssKb)}; method: ${rss.method}`);
  if (TIME) {
    say(`CPU per call (user+sys incl. children, median of ${COUNT_RUNS}, 10 ms ticks): ` + ctx.plugins.map((p) =>
      `${p.key} ADD ${fmt(rss[p.key].ADD.cpuMs, 0)} / DEL ${fmt(rss[p.key].DEL.cpuMs, 0)} ms`).join(', ') +
      ` — bursts on ${cpus().length} CPUs take about calls x CPU / CPUs`);
  }
  say();
  say('notes:');
  say('- targets are informational; figures vary by machine, compare the ratios.');
  say('- the floor is what any Node plugin pays (node start + reading stdin); "testcni - floor" is testcni\'s own work.');
  if (certs) {
    say(`- NODE_EXTRA_CA_CERTS is set in this environment (${certs.value}); the calls above run without it, as a runtime's` +
      ` would. With it, the floor p50 is ${fmt(certs.floorWith)} ms instead of ${fmt(certs.floorWithout)} ms (+${fmt(certs.floorWith - certs.floorWithout)} ms per node start).`);
  } else {
    say('- NODE_EXTRA_CA_CERTS is not set here; where it is set it adds ~80 ms to every node start, so the calls never pass it.');
  }
  for (const n of counts.notes) say(`- ${n}`);
  return lines.join('\n');
}

function toJson(r) {
  const { opts: o, ctx, seq, conc, counts, rss, certs } = r;
  const d = r.derived.testcni;
  const plugins = Object.fromEntries(ctx.plugins.map((p) => [p.key, {
    label: p.label,
    sequential: { ADD: summary(seq.get(p.key).ADD), DEL: summary(seq.get(p.key).DEL) },
    concurrent: conc[p.key],
    resources: rss[p.key],
  }]));
  return {
    iterations: o.iterations, concurrency: o.concurrency, node: process.version, kernel: release(), cpus: cpus().length, loadAverage: r.load,
    reference: r.refVersion, plugins, derived: r.derived, processCounts: counts, rssMethod: rss.method, nodeExtraCaCerts: certs,
    targets: {
      addOverFloorLeReference: d.ADD.pass,
      delOverFloorLeReference: d.DEL.pass,
      processesPerAddLe3: d.processesPerAdd <= TARGET_PROCS_PER_ADD,
      peakRssLe60Mb: d.rssMb <= TARGET_RSS_MB,
    },
  };
}

async function main() {
  const load = { start: loadavg()[0] };
  const ctx = setup();
  ctx.dir = owned.dir;
  progress(`node netns ${ctx.nodeNs}, temp dir ${ctx.dir}; warming up`);
  await warmUp(ctx);
  progress(`sequential: ${opts.iterations} ADDs + ${opts.iterations} DELs per plugin`);
  const seq = await sequential(ctx, opts.iterations);
  progress(`concurrent: bursts of ${opts.concurrency}`);
  const conc = await concurrent(ctx, opts.concurrency);
  progress('process count and peak RSS');
  const keys = ctx.plugins.filter((p) => p.key === 'testcni' || p.key === 'vxlan').map((p) => p.key);
  const counts = {};
  for (const key of keys) counts[key] = await processCounts(ctx, key);
  const rss = await resources(ctx);
  const certs = await caCertsCost(ctx);
  load.end = loadavg()[0];
  const r = { opts, ctx, seq, conc, counts, rss, certs, load, refVersion: referenceVersion() };
  r.derived = Object.fromEntries(keys.map((key) => [key, derive(seq, counts, rss, key)]));
  process.stdout.write((opts.json ? JSON.stringify(toJson(r), roundNumbers, 2) : report(r)) + '\n');
}

try {
  await main();
} catch (e) {
  process.stderr.write(`cni-latency: failed: ${e?.stack ?? e}\n`);
  process.exitCode = 1;
} finally {
  cleanup();
}
