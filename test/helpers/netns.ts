// Root-level test fixtures: throwaway network namespaces, a simulated node, the plugin run
// as a runtime runs it, and snapshots of node state. Everything carries a unique prefix and is
// removed in teardown.
import { spawnSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readdirSync, lstatSync, readlinkSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

export const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const PLUGIN = join(ROOT, 'dist', 'testcni.cjs');
/** The single executable the build makes beside the bundle (runs without Node installed). */
export const EXECUTABLE = join(ROOT, 'dist', 'testcni');
export const NETNS_DIR = '/var/run/netns';

function has(cmd: string): boolean {
  return toolPath(cmd) !== null;
}

/** Absolute path of a system tool, or null: for calls whose PATH does not hold it. */
export function toolPath(cmd: string): string | null {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) if (existsSync(join(d, cmd))) return join(d, cmd);
  return null;
}

/** Why root-level tests cannot run here, or null when they can. */
export function rootSkipReason(extraTools: string[] = []): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const t of ['ip', 'nsenter', 'sysctl', ...extraTools]) if (!has(t)) return `needs ${t} (install it; .ci/run does)`;
  if (!existsSync(PLUGIN)) return `needs the built plugin at ${PLUGIN} (npm run build)`;
  return null;
}

/** A short prefix unique to this process, for names of at most 15 characters. */
export function uniquePrefix(tag: string): string {
  return `tc${tag}${(process.pid % 10000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}

export function sh(argv: string[], opts: { input?: string; allowFail?: boolean } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { input: opts.input ?? '', encoding: 'utf8' });
  const out = { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (out.code !== 0 && !opts.allowFail) throw new Error(`${argv.join(' ')} exited ${out.code}: ${out.stderr}`);
  return out;
}

export function addNetns(name: string): string {
  sh(['ip', 'netns', 'add', name]);
  sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  return join(NETNS_DIR, name);
}

export function delNetns(name: string): void {
  sh(['ip', 'netns', 'del', name], { allowFail: true });
}

/** Runs argv inside a netns without touching the mount namespace. */
export function inNetns(ns: string, argv: string[], opts: { input?: string; allowFail?: boolean } = {}) {
  return sh(['nsenter', `--net=${join(NETNS_DIR, ns)}`, '--', ...argv], opts);
}

export interface PluginCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifName?: string;
  config: unknown;
  /** the node namespace the plugin runs in */
  nodeNs: string;
  env?: Record<string, string | undefined>;
  /** the plugin's argv (default: node dist/testcni.cjs) */
  program?: string[];
}

export interface PluginResult {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | null;
}

export function pluginEnv(call: PluginCall): Record<string, string> {
  const env: Record<string, string | undefined> = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifName ?? 'eth0',
    CNI_PATH: '/opt/cni/bin',
    ...call.env,
  };
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as Record<string, string>;
}

export function pluginArgv(nodeNs: string, program: string[] = [process.execPath, PLUGIN]): string[] {
  // nsenter by absolute path: a call may give the plugin a PATH without it.
  return [toolPath('nsenter') ?? 'nsenter', `--net=${join(NETNS_DIR, nodeNs)}`, '--', ...program];
}

function parse(stdout: string): Record<string, unknown> | null {
  if (stdout.trim() === '') return null;
  try {
    return JSON.parse(stdout);
  } catch {
    return null;
  }
}

/** Runs the built plugin as a runtime would: env + stdin, inside the node namespace. */
export function runPlugin(call: PluginCall): PluginResult {
  const argv = pluginArgv(call.nodeNs, call.program);
  const r = spawnSync(argv[0]!, argv.slice(1), {
    input: typeof call.config === 'string' ? call.config : JSON.stringify(call.config),
    env: pluginEnv(call),
    encoding: 'utf8',
  });
  const stdout = r.stdout ?? '';
  return { code: r.status ?? -1, stdout, stderr: r.stderr ?? '', json: parse(stdout) };
}

export function runPluginAsync(call: PluginCall): Promise<PluginResult> {
  const argv = pluginArgv(call.nodeNs, call.program);
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: pluginEnv(call) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr, json: parse(stdout) }));
    child.stdin.end(typeof call.config === 'string' ? call.config : JSON.stringify(call.config));
  });
}

/** Every file below dir with its content (for before/after comparisons of state dirs). */
export function treeSnapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) {
        out[`${p.slice(dir.length)}/`] = '';
        walk(p);
      } else if (st.isSymbolicLink()) out[p.slice(dir.length)] = readlinkSync(p); // a lock: its owner's PID
      else if (st.isFile()) out[p.slice(dir.length)] = readFileSync(p, 'utf8');
      else out[p.slice(dir.length)] = '(special file)';
    }
  };
  walk(dir);
  return out;
}

/** The node namespace's kernel state as JSON, minus counters and timers that move on their own. */
export function nodeState(ns: string): Record<string, unknown> {
  const j = (argv: string[]) => JSON.parse(inNetns(ns, argv).stdout || '[]');
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        if (['stats', 'stats64', 'valid_life_time', 'preferred_life_time', 'used', 'confirmed', 'updated', 'probes'].includes(k)) continue;
        o[k] = strip(x);
      }
      return o;
    }
    return v;
  };
  const ipt = has('iptables-save') ? inNetns(ns, ['iptables-save'], { allowFail: true }).stdout.split('\n').filter((l) => l && !l.startsWith('#')) : [];
  return {
    link: strip(j(['ip', '-j', 'link', 'show'])),
    addr: strip(j(['ip', '-j', 'addr', 'show'])),
    route: strip(j(['ip', '-j', 'route', 'show', 'table', 'all'])),
    neigh: (strip(j(['ip', '-j', 'neigh', 'show'])) as { state?: string[] }[]).filter((n) => !(n.state ?? []).includes('FAILED')),
    iptables: ipt.map((l) => l.replace(/\[\d+:\d+\]/g, '')),
  };
}

export interface TestNode {
  name: string;
  dir: string;
  stateDir: string;
  ipamDir: string;
  config(extra?: Record<string, unknown>): Record<string, unknown>;
  cleanup(): void;
}

/** A simulated node: its own netns and its own state/IPAM directories. */
export function makeNode(prefix: string, opts: { subnet?: string; cniVersion?: string } = {}): TestNode {
  const name = `${prefix}n`;
  addNetns(name);
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const stateDir = join(dir, 'state');
  const ipamDir = join(dir, 'ipam');
  return {
    name,
    dir,
    stateDir,
    ipamDir,
    config: (extra = {}) => ({
      cniVersion: opts.cniVersion ?? '1.1.0',
      name: `${prefix}net`,
      type: 'testcni',
      subnet: opts.subnet ?? '10.244.0.0/16',
      stateDir,
      ...extra,
      ipam: { dataDir: ipamDir, ...((extra.ipam as object | undefined) ?? {}) },
    }),
    cleanup: () => {
      delNetns(name);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
