#!/usr/bin/env node
// Why executor/runner.ts spawns with node:child_process and not execa: the start-up cost each
// library adds to a bundled CommonJS plugin, measured as `node <bundle>` wall time. Also the
// real plugin's start-up (CNI_COMMAND=VERSION) against a do-nothing script, as the bundle and
// as the single executable (dist/testcni), with a build of it without V8's code cache and a do-nothing
// single executable beside them (built here, in the temp dir).
import { build } from 'esbuild';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync, statSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, cpus, release, loadavg } from 'node:os';
import { buildSea } from '../scripts/build-sea.mjs';
import { ROOT, PLUGIN, TOOL_PATH, liveChildren, timedRun, summary, fmt, table, parseArgs, fail, roundNumbers } from './lib.mjs';

const USAGE = `usage: node bench/runner-startup.mjs [--runs N] [--json]
  --runs N   timed starts per program (default 30; 3 warm-up starts each are not counted)
  --json     print the figures as one JSON document instead of tables`;
const opts = parseArgs(process.argv.slice(2), {
  runs: { default: 30, min: 3, max: 1000 },
  json: { type: 'flag', default: false },
}, USAGE);
const WARMUP = 3;
const EXPECTED_EXECA = '9.6.0';

const execaDir = join(ROOT, 'node_modules', 'execa');
if (!existsSync(join(execaDir, 'package.json'))) {
  fail(`runner-startup: ${execaDir} is missing: execa@${EXPECTED_EXECA} is a devDependency, run npm install (or npm ci)`);
}
if (!existsSync(PLUGIN)) fail(`runner-startup: ${PLUGIN} is missing: run npm run build first`);
const SEA = join(ROOT, 'dist', 'testcni');
if (!existsSync(SEA)) fail(`runner-startup: ${SEA} (the single executable) is missing: run npm run build first`);
const execaVersion = JSON.parse(readFileSync(join(execaDir, 'package.json'), 'utf8')).version;

const dir = mkdtempSync(join(tmpdir(), 'tcb-startup-'));
let cleanedUp = false;
function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const child of liveChildren) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(sig, () => {
    cleanup();
    process.exit(code);
  });
}

// Each entry imports its spawner and keeps it reachable (so the bundler cannot drop it), reads
// stdin and prints "{}" like a plugin that has nothing to do; the spawner is never called.
const ENTRIES = {
  'child_process': "import { spawn } from 'node:child_process';\nimport { readFileSync } from 'node:fs';\n" +
    "if (process.env.BENCH_NEVER) spawn('/bin/true');\nreadFileSync(0);\nprocess.stdout.write('{}');\n",
  'execa': "import { execa } from 'execa';\nimport { readFileSync } from 'node:fs';\n" +
    "if (process.env.BENCH_NEVER) execa('/bin/true');\nreadFileSync(0);\nprocess.stdout.write('{}');\n",
};

async function bundle(name, source) {
  const entry = join(dir, `${name}.mjs`);
  const outfile = join(dir, `${name}.cjs`);
  writeFileSync(entry, source);
  // The same esbuild settings as scripts/build.mjs; modules resolve from the project's node_modules.
  await build({
    entryPoints: [entry], outfile, bundle: true, format: 'cjs', platform: 'node', target: 'node20',
    minifyWhitespace: true, minifySyntax: true, legalComments: 'none', logLevel: 'error',
    nodePaths: [join(ROOT, 'node_modules')],
  });
  return { file: outfile, kib: statSync(outfile).size / 1024 };
}

async function main() {
  const plugin = join(dir, 'testcni.cjs'); // a copy: a concurrent rebuild of dist/ cannot disturb the runs
  copyFileSync(PLUGIN, plugin);
  const floor = join(dir, 'floor.cjs');
  writeFileSync(floor, "'use strict';\nrequire('node:fs').readFileSync(0);\nprocess.stdout.write('{}');\n");
  const bundles = {};
  for (const [name, src] of Object.entries(ENTRIES)) bundles[name] = await bundle(name, src);
  const sea = join(dir, 'testcni');
  copyFileSync(SEA, sea);
  // The same single executable without V8's code cache for its main script (the build uses
  // one), and one whose main script is the floor: what the packaging itself costs or saves.
  process.stderr.write('runner-startup: building two single executables for comparison (~10 s)\n');
  const assets = { 'commands.cjs': join(ROOT, 'dist/commands.cjs'), 'agent.cjs': join(ROOT, 'dist/agent.cjs') };
  const seaNoCodeCache = join(dir, 'testcni-nocodecache');
  await buildSea({ root: ROOT, main: plugin, assets, output: seaNoCodeCache, useCodeCache: false });
  const seaFloor = join(dir, 'floor-sea');
  await buildSea({ root: ROOT, main: floor, assets: {}, output: seaFloor });
  const mib = (f) => fmt(statSync(f).size / 2 ** 20);

  // No NODE_EXTRA_CA_CERTS / NODE_OPTIONS: a runtime starts plugins with a bare environment.
  const env = { PATH: TOOL_PATH };
  const programs = [
    { key: 'floor', label: 'floor (no-op CJS script)', argv: [process.execPath, floor], env },
    { key: 'child_process', label: `bundle importing node:child_process (${fmt(bundles.child_process.kib)} KiB)`, argv: [process.execPath, bundles.child_process.file], env },
    { key: 'execa', label: `bundle importing execa ${execaVersion} (${fmt(bundles.execa.kib)} KiB)`, argv: [process.execPath, bundles.execa.file], env },
    { key: 'testcni', label: `dist/testcni.cjs CNI_COMMAND=VERSION (${fmt(statSync(plugin).size / 1024)} KiB)`, argv: [process.execPath, plugin], env: { ...env, CNI_COMMAND: 'VERSION' } },
    { key: 'sea', label: `dist/testcni (single executable, ${mib(sea)} MiB) CNI_COMMAND=VERSION`, argv: [sea], env: { ...env, CNI_COMMAND: 'VERSION' } },
    { key: 'seaNoCodeCache', label: 'the same without code cache CNI_COMMAND=VERSION', argv: [seaNoCodeCache], env: { ...env, CNI_COMMAND: 'VERSION' } },
    { key: 'seaFloor', label: `floor as a single executable (${mib(seaFloor)} MiB)`, argv: [seaFloor], env },
  ];
  const ms = Object.fromEntries(programs.map((p) => [p.key, []]));
  for (let i = -WARMUP; i < opts.runs; i++) {
    // Interleaved, with a rotating start, so drift in machine load hits every program alike.
    for (let k = 0; k < programs.length; k++) {
      const p = programs[(k + Math.max(i, 0)) % programs.length];
      const r = await timedRun(p.argv, { env: p.env, input: '{}' });
      if (r.code !== 0) throw new Error(`${p.key} exited ${r.code}: ${r.stderr.slice(-400)}`);
      if (i >= 0) ms[p.key].push(r.ms);
    }
  }
  const s = Object.fromEntries(programs.map((p) => [p.key, summary(ms[p.key])]));
  const diff = {
    execaOverChildProcess: s.execa.p50 - s.child_process.p50,
    childProcessOverFloor: s.child_process.p50 - s.floor.p50,
    testcniVersionOverFloor: s.testcni.p50 - s.floor.p50,
    seaOverBundle: s.sea.p50 - s.testcni.p50,
    seaOverFloor: s.sea.p50 - s.floor.p50,
    seaFloorOverFloor: s.seaFloor.p50 - s.floor.p50,
    codeCacheSaves: s.seaNoCodeCache.p50 - s.sea.p50,
  };
  if (opts.json) {
    process.stdout.write(JSON.stringify({ runs: opts.runs, node: process.version, kernel: release(), cpus: cpus().length, loadAverage: loadavg()[0], execaVersion,
      programs: Object.fromEntries(programs.map((p) => [p.key, { label: p.label, ...s[p.key] }])), differenceOfMediansMs: diff }, roundNumbers, 2) + '\n');
    return;
  }
  const out = [];
  out.push(`node start-up: ${opts.runs} timed runs per program (interleaved, ${WARMUP} warm-up rounds), env PATH only; wall ms spawn -> exit`);
  out.push(`machine: ${cpus().length} CPUs, linux ${release()}, node ${process.version}; load average (1 min) ${fmt(loadavg()[0], 2)}`);
  out.push('');
  out.push(table(['program', 'median', 'p95', 'min', 'max'],
    programs.map((p) => [p.label, fmt(s[p.key].p50), fmt(s[p.key].p95), fmt(s[p.key].min), fmt(s[p.key].max)])));
  out.push('');
  out.push(`execa bundle - child_process bundle (medians): ${fmt(diff.execaOverChildProcess)} ms added to every plugin call by loading execa`);
  out.push(`child_process bundle - floor (medians):       ${fmt(diff.childProcessOverFloor)} ms`);
  out.push(`testcni VERSION - floor (medians):            ${fmt(diff.testcniVersionOverFloor)} ms (loading and evaluating the plugin bundle)`);
  out.push(`single executable - bundle (medians):         ${fmt(diff.seaOverBundle)} ms (VERSION: dist/testcni vs node dist/testcni.cjs)`);
  out.push(`single executable - floor (medians):          ${fmt(diff.seaOverFloor)} ms`);
  out.push(`floor single executable - floor (medians):    ${fmt(diff.seaFloorOverFloor)} ms (the packaging alone)`);
  out.push(`without - with code cache (medians):          ${fmt(diff.codeCacheSaves)} ms (positive: the code cache helps)`);
  out.push('');
  out.push('figures vary by machine: compare the differences, not the absolute times.');
  process.stdout.write(out.join('\n') + '\n');
}

try {
  await main();
} catch (e) {
  process.stderr.write(`runner-startup: failed: ${e?.stack ?? e}\n`);
  process.exitCode = 1;
} finally {
  cleanup();
}
