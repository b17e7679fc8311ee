// Shared pieces of the benchmark scripts: timed process runs, percentiles, tool lookup and
// plain-text tables. Benchmarks print figures; they assert nothing.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const PLUGIN = join(ROOT, 'dist', 'testcni.cjs');
export const TOOL_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/** Absolute path of a program on the standard system path, or null. */
export function which(name) {
  for (const dir of TOOL_PATH.split(':')) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return null;
}

/** Processes still running, so an interrupted benchmark can stop exactly the ones it started. */
export const liveChildren = new Set();

/**
 * Runs argv (no shell) with exactly `env`, feeding `input` on stdin. `ms` is wall time from
 * just before spawn() to the process's exit; `start`/`end` are hrtime stamps (ns, bigint).
 * `onSpawn(child)` runs right after the spawn (for observers such as a memory poller).
 */
export function timedRun(argv, { env, input = '', onSpawn }) {
  return new Promise((resolve) => {
    const out = [];
    const err = [];
    let end = 0n;
    let code = null;
    let spawnError = null;
    const start = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] });
    liveChildren.add(child);
    onSpawn?.(child);
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    child.stdin.on('error', () => { /* exited before reading stdin: the exit code tells */ });
    child.on('error', (e) => { spawnError = e; });
    child.on('exit', (c, sig) => {
      end = process.hrtime.bigint();
      code = c ?? (sig ? 128 : 1);
    });
    child.on('close', () => {
      liveChildren.delete(child);
      if (end === 0n) end = process.hrtime.bigint();
      resolve({
        pid: child.pid,
        code: spawnError ? 127 : code,
        ms: Number(end - start) / 1e6,
        start,
        end,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') || (spawnError ? String(spawnError.message) : ''),
      });
    });
    child.stdin.end(input);
  });
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples, p) {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

export function summary(samples) {
  return {
    n: samples.length,
    p50: percentile(samples, 50),
    p95: percentile(samples, 95),
    min: Math.min(...samples),
    max: Math.max(...samples),
  };
}

/** JSON.stringify replacer: milliseconds to 3 decimals (microseconds) instead of 15 digits. */
export const roundNumbers = (_key, v) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v);

export const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

/** Left-aligned first column, right-aligned others. */
export function table(header, rows) {
  const all = [header, ...rows].map((r) => r.map(String));
  const width = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  ');
  return [line(all[0]), width.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

/** Parses `--name value` and `--flag` options against a table of defaults; exits 2 on misuse. */
export function parseArgs(argv, spec, usage) {
  const opts = Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, v.default]));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(usage + '\n');
      process.exit(0);
    }
    const key = a.startsWith('--') ? a.slice(2) : null;
    const s = key ? spec[key] : undefined;
    if (!s) fail(`unknown argument ${a}\n${usage}`);
    if (s.type === 'flag') {
      opts[key] = true;
      continue;
    }
    if (s.type === 'path') {
      if (argv[i + 1] === undefined) fail(`--${key} needs a file name\n${usage}`);
      opts[key] = resolvePath(argv[++i]);
      continue;
    }
    const v = Number(argv[++i]);
    if (!Number.isInteger(v) || v < s.min || v > s.max) fail(`--${key} needs an integer from ${s.min} to ${s.max}\n${usage}`);
    opts[key] = v;
  }
  return opts;
}

/** Exit status 2: the benchmark cannot run here (a precondition, not a measurement). */
export function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

/** Successful execve calls in an `strace -f -e trace=execve` log, grouped by process. */
export function execsByPid(log) {
  const execs = [];
  const pending = new Map();
  for (const line of log.split('\n')) {
    const start = line.match(/^(\d+)\s+execve\("([^"]*)"/);
    if (start) {
      const rec = { pid: Number(start[1]), path: start[2], ok: /\)\s*=\s*0\s*$/.test(line) };
      execs.push(rec);
      if (/<unfinished \.\.\.>\s*$/.test(line)) pending.set(rec.pid, rec);
      continue;
    }
    const resumed = line.match(/^(\d+)\s+<\.\.\. execve resumed>.*=\s*(-?\d+)/);
    if (resumed && pending.has(Number(resumed[1]))) {
      pending.get(Number(resumed[1])).ok = resumed[2] === '0';
      pending.delete(Number(resumed[1]));
    }
  }
  const byPid = new Map();
  for (const e of execs.filter((x) => x.ok)) {
    if (!byPid.has(e.pid)) byPid.set(e.pid, []);
    byPid.get(e.pid).push(e.path.split('/').pop());
  }
  return byPid;
}

/** The plugin's own count of processes it started (its debug log line {"msg":"done",…}). */
export function spawnedFromLog(stderr) {
  for (const line of stderr.split('\n')) {
    try {
      const j = JSON.parse(line);
      if (j.msg === 'done' && typeof j.spawned === 'number') return j.spawned;
    } catch { /* not a log line */ }
  }
  return null;
}
