// Node facts for the planner, gathered cheaply: tool paths and the uplink MTU come from the
// file system; a process is started only when /sys cannot be trusted for this namespace.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { release } from 'node:os';
import type { BpfObject, NodeFacts, Probe, Tools } from '../model/plan.ts';
import { fnv1a64Bytes } from '../lib/hash.ts';
import type { Runner } from './runner.ts';
import { queryOutput } from './probe.ts';
import { realSystem, sysfsIsOurs, type NodeSystem } from './system.ts';

const SEARCH = ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

export function findTool(name: string): string {
  for (const dir of SEARCH) {
    const p = `${dir}/${name}`;
    if (existsSync(p)) return p;
  }
  return `/usr/sbin/${name}`; // not installed: the step that needs it fails with a clear message
}

/** Every plan runs these; a mode names the rest (ModeDefinition.tools). */
export const BASE_TOOLS = ['ip', 'nsenter', 'sysctl'] as const;

/** Absolute paths of the base tools and of `extra`. */
export function resolveTools(extra: readonly string[] = []): Tools {
  const tools: Record<string, string> = {};
  for (const name of [...BASE_TOOLS, ...extra]) tools[name] = findTool(name);
  return tools as Tools;
}

/** The interface of the IPv4 default route in this process's netns (/proc/self/net is per netns). */
export function defaultRouteDevice(): string | null {
  try {
    for (const line of readFileSync('/proc/self/net/route', 'utf8').split('\n').slice(1)) {
      const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
      if (iface && dest === '00000000' && mask === '00000000') return iface;
    }
  } catch { /* no IPv4 */ }
  return null;
}


export async function uplinkMtu(dev: string | null, runner: Runner, ip: string): Promise<number | null> {
  if (!dev) return null;
  if (sysfsIsOurs()) {
    try {
      return Number(readFileSync(`/sys/class/net/${dev}/mtu`, 'utf8')) || null;
    } catch {
      return null;
    }
  }
  const r = await runner.run([ip, '-j', 'link', 'show', 'dev', dev]);
  if (r.exitCode !== 0) return null;
  try {
    return (JSON.parse(r.stdout) as { mtu?: number }[])[0]?.mtu ?? null;
  } catch {
    return null;
  }
}

/** This process's network namespace, by the inode of its namespace file (see NodeFacts.netns). */
export function netnsId(): string | undefined {
  try {
    return String(statSync('/proc/self/ns/net').ino);
  } catch {
    return undefined;
  }
}

/** Where compiled BPF objects are looked for: `bpf/` beside the running program (dist/bpf for
 *  the bundle and the single executable, /opt/cni/bin/bpf once installed), then the package
 *  location. */
export function objectDirs(): string[] {
  const dirs = [process.argv[1], process.execPath].filter((p): p is string => typeof p === 'string' && p.startsWith('/'))
    .map((p) => join(dirname(p), 'bpf'));
  return [...new Set([...dirs, '/usr/lib/testcni/bpf'])];
}

/** A compiled object by name, with the digest of its content; the first place that has it wins. */
export function findObject(name: string, dirs: readonly string[] = objectDirs()): BpfObject {
  for (const d of dirs) {
    const path = join(d, name);
    try {
      return { path, digest: fnv1a64Bytes(readFileSync(path)) };
    } catch { /* not here */ }
  }
  return { path: join(dirs[0] ?? '/usr/lib/testcni/bpf', name), digest: 'missing' };
}

export interface FactsWanted {
  /** the configured uplink, else the default route's interface */
  uplink: string | null;
  /** the pod MTU is configured: the uplink's is not needed (reading it can cost a process) */
  mtuConfigured: boolean;
  /** tools beyond the base set */
  tools: readonly string[];
  /** compiled BPF objects the mode loads */
  objects?: readonly string[];
  /** the mode's own queries to answer into facts.observed (ModeDefinition.observe) */
  observe?: (facts: NodeFacts) => Record<string, Probe>;
}

export async function gatherFacts(want: FactsWanted, runner: Runner, sys: NodeSystem = realSystem): Promise<NodeFacts> {
  const tools = resolveTools(want.tools);
  const uplink = want.uplink ?? defaultRouteDevice();
  const facts: NodeFacts = {
    tools,
    hostPid: process.pid,
    uplink,
    uplinkMtu: want.mtuConfigured ? null : await uplinkMtu(uplink, runner, tools.ip),
  };
  const ns = netnsId();
  if (ns) facts.netns = ns;
  facts.kernel = release();
  if (want.objects?.length) facts.objects = Object.fromEntries(want.objects.map((o) => [o, findObject(o)]));
  if (!want.observe) return facts;
  const observed: Record<string, unknown> = {};
  for (const [name, probe] of Object.entries(want.observe(facts))) {
    const out = await queryOutput(probe, facts, runner, sys);
    observed[name] = out.exitCode === 0 ? (out.json ?? out.stdout) : null;
  }
  return { ...facts, observed };
}
