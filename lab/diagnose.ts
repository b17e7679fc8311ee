// What a failed `lab check` prints so that it explains itself: per node, the forwarding flags
// the datapath depends on, the routes in its kernel, its agent's view; and the kernel's
// neighbour table (shared by every namespace on the machine), whose overflow drops new
// neighbours without a word.
import { readFileSync } from 'node:fs';
import type { LabState, LabNode } from './state.ts';
import { runner, tools, inNetns } from './sys.ts';
import { agentStatus } from './agents.ts';
import { textTable } from '../lib/text-table.ts';
import { HOST_VETH_PREFIX } from '../planner/names.ts';

export interface NodeDiagnosis {
  node: string;
  forwarding: Record<string, string>;
  routes: string[];
  agent: string;
}

export interface NeighbourTable {
  entries: number;
  /** times a new neighbour was refused because the table was full (since boot) */
  tableFulls: number;
  gcThresh3: number | null;
}

/** The kernel's ARP table counters (/proc/net/stat/arp_cache: one line per CPU, hex). */
export function neighbourTable(): NeighbourTable | null {
  try {
    const lines = readFileSync('/proc/net/stat/arp_cache', 'utf8').trim().split('\n');
    const head = lines[0]!.trim().split(/\s+/);
    const rows = lines.slice(1).map((l) => l.trim().split(/\s+/).map((x) => parseInt(x, 16)));
    const col = (name: string) => head.indexOf(name);
    let thresh: number | null = null;
    try {
      thresh = Number(readFileSync('/proc/sys/net/ipv4/neigh/default/gc_thresh3', 'utf8'));
    } catch { /* not visible here */ }
    return {
      entries: rows[0]?.[col('entries')] ?? 0,
      tableFulls: rows.reduce((n, r) => n + (r[col('table_fulls')] ?? 0), 0),
      gcThresh3: thresh,
    };
  } catch {
    return null;
  }
}

/** ip_forward and every device's forwarding flag, but pods' host veths (their own flag does
 *  not route anything in host-gw, and there are many). */
const FORWARDING = '^net\\.ipv4\\.(ip_forward|conf\\.[^.]+\\.forwarding)$';

async function diagnoseNode(n: LabNode): Promise<NodeDiagnosis> {
  const fwd = await runner.run(inNetns(n.netns, [tools.sysctl, '-a', '--pattern', FORWARDING]));
  const forwarding: Record<string, string> = {};
  for (const line of fwd.stdout.trim().split('\n')) {
    const [k, v] = line.split(' = ');
    if (!k || v === undefined || k.startsWith(`net.ipv4.conf.${HOST_VETH_PREFIX}`) || k === 'net.ipv4.conf.lo.forwarding') continue;
    forwarding[k.replace('net.ipv4.', '')] = v;
  }
  const r = await runner.run(inNetns(n.netns, [tools.ip, '-o', '-4', 'route', 'show']));
  const st = await agentStatus(n);
  const agent = !st ? 'no answer' : `${st.ready ? 'ready' : `NOT READY (${st.reason ?? ''})`}, knows ${st.nodes.length} node(s), ${st.converged ? 'converged' : `NOT converged${st.lastReconcile?.error ? `: ${st.lastReconcile.error}` : ''}`}`;
  return { node: n.name, forwarding, routes: r.stdout.trim().split('\n').filter(Boolean), agent };
}

export async function diagnose(s: LabState): Promise<NodeDiagnosis[]> {
  return Promise.all(s.nodes.map((n) => diagnoseNode(n)));
}

export function renderDiagnosis(nodes: NodeDiagnosis[], neigh: { before: NeighbourTable | null; after: NeighbourTable | null }): string {
  const keys = [...new Set(nodes.flatMap((n) => Object.keys(n.forwarding)))];
  const lines = [
    'per node (forwarding flags, agent):',
    ...textTable([['NODE', ...keys.map((k) => k.replace('conf.', '').replace('.forwarding', ' fwd')), 'AGENT'],
      ...nodes.map((n) => [n.node, ...keys.map((k) => n.forwarding[k] ?? '?'), n.agent])]).map((l) => `  ${l}`),
    '',
    ...nodes.flatMap((n) => [`routes of ${n.node}:`, ...n.routes.map((r) => `  ${r}`)]),
  ];
  const { before, after } = neigh;
  if (before && after) {
    const full = after.tableFulls - before.tableFulls;
    lines.push('', `kernel neighbour table: ${after.entries} entries (gc_thresh3 ${after.gcThresh3 ?? '?'}), ${full} refused as full during the check${full > 0 ? ': new neighbours were dropped (see README, "Limits")' : ''}`);
  }
  return lines.join('\n') + '\n';
}
