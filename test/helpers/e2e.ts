// Shared pieces of the black-box tests under test/e2e: a node whose kernel state is
// comparable before/after, a cleanup scope, and small readers of the node's files and links.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { journalPath, parseJournal } from '../../executor/journal.ts';
import {
  makeNode, addNetns, delNetns, inNetns, nodeState, runPlugin,
  type TestNode, type PluginCall, type PluginResult,
} from './netns.ts';

export const BRIDGE = 'testcni0';
export const E2E_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

/** Everything a test creates, removed in t.after (reverse order) even when the test fails. */
export class Scope {
  private readonly undo: (() => void)[] = [];

  constructor(t: TestContext, readonly prefix: string) {
    t.after(() => this.close());
  }

  defer(fn: () => void): void {
    this.undo.push(fn);
  }

  /** A simulated node (see makeComparableNode). */
  node(tag = ''): TestNode {
    const node = makeComparableNode(`${this.prefix}${tag}`);
    this.defer(() => node.cleanup());
    return node;
  }

  /** A pod network namespace; returns its path (what a runtime passes as CNI_NETNS). */
  pod(tag: string): { name: string; path: string } {
    const name = `${this.prefix}p${tag}`;
    this.defer(() => delNetns(name));
    return { name, path: addNetns(name) };
  }

  close(): void {
    for (const fn of this.undo.splice(0).reverse()) {
      try {
        fn();
      } catch { /* keep removing the rest */ }
    }
  }
}

/**
 * makeNode, with IPv6 address autoconfiguration off for links created in the node later.
 * Otherwise the kernel gives the bridge a link-local address, its routes and a DAD state on
 * its own schedule (only when its carrier was up long enough), which no plugin controls and
 * which would make before/after snapshots differ by timing alone.
 */
export function makeComparableNode(prefix: string): TestNode {
  const node = makeNode(prefix);
  try {
    inNetns(node.name, ['sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1']);
  } catch (e) {
    node.cleanup();
    throw e;
  }
  return node;
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

type LinkJson = { ifname: string; master?: string; operstate?: string; flags?: string[] };

/** Links whose operstate has not caught up yet (see settledState). */
function laggingLinks(links: LinkJson[]): string[] {
  const adminUp = (l: LinkJson) => (l.flags ?? []).includes('UP');
  return links
    .filter((l) => l.ifname !== 'lo' && adminUp(l))
    .filter((l) => {
      const ports = links.filter((x) => x.master === l.ifname);
      if (l.ifname === BRIDGE || ports.length > 0) return l.operstate !== (ports.some((p) => p.operstate === 'UP') ? 'UP' : 'DOWN');
      // A veth that is up, with its peer up (every veth these tests keep). A device without a
      // carrier of its own (a VXLAN device) stays UNKNOWN.
      return l.operstate !== 'UP' && l.operstate !== 'UNKNOWN';
    })
    .map((l) => `${l.ifname}:${l.operstate}`);
}

/**
 * nodeState of a node or pod namespace once the kernel has caught up. Operstate (and with it
 * NO-CARRIER) follows carrier changes through linkwatch, which may lag up to a second: a bridge
 * must read UP exactly when one of its ports is UP, and an admin-up veth must read UP. An IPv6
 * address of a new link is `tentative` until DAD ends (about a second), and its local route
 * appears only then.
 * After the timeout the state is returned as it is, for the caller's comparison to report.
 */
export function settledNodeState(ns: string, timeoutMs = 3000): Record<string, unknown> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = nodeState(ns);
    const inDad = JSON.stringify(s.addr ?? []).includes('"tentative":true');
    if ((laggingLinks(s.link as LinkJson[]).length === 0 && !inDad) || Date.now() > deadline) return s;
    sleepSync(50);
  }
}

export function linkNames(ns: string): string[] {
  return (JSON.parse(inNetns(ns, ['ip', '-j', 'link', 'show']).stdout) as LinkJson[]).map((l) => l.ifname);
}

/** The pod's eth0 (or another interface) as `ip -j addr` shows it, or null. */
export function podLink(podNs: string, ifName = 'eth0'): { address: string; mtu: number; addr_info: { local: string; prefixlen: number; family: string }[] } | null {
  const r = inNetns(podNs, ['ip', '-j', 'addr', 'show', 'dev', ifName], { allowFail: true });
  if (r.code !== 0) return null;
  return (JSON.parse(r.stdout) as never[])[0] ?? null;
}

export function podDefaultRoutes(podNs: string): { dst: string; gateway?: string; dev: string }[] {
  return JSON.parse(inNetns(podNs, ['ip', '-j', 'route', 'show', 'default']).stdout || '[]');
}

/** Pings from a pod; the first packets right after link-up can be lost, so a few rounds. */
export function ping(podNs: string, ip: string, rounds = 3): boolean {
  for (let i = 0; i < rounds; i++) {
    if (inNetns(podNs, ['ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '1', ip], { allowFail: true }).code === 0) return true;
  }
  return false;
}

/** The node's IPAM reservations of one network: ip -> "containerId/ifName". */
export function reservations(node: TestNode, network = networkOf(node)): Record<string, string> {
  const dir = join(node.ipamDir, network);
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir)) {
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(f)) continue;
    out[f] = readFileSync(join(dir, f), 'utf8').replace('\r\n', '/');
  }
  return out;
}

export function networkOf(node: TestNode): string {
  return node.config().name as string;
}

export function journalDirOf(node: TestNode, network = networkOf(node)): string {
  return join(node.stateDir, 'journal', network);
}

export function journalFile(node: TestNode, containerId: string, ifName = 'eth0'): string {
  return journalPath(node.stateDir, { network: networkOf(node), containerId, ifName });
}

export interface JournalView {
  state: string;
  lease: { address: string } | null;
  plan: { steps: { id: string }[] };
  steps: Record<string, { status: string }>;
}

export function readJournal(node: TestNode, containerId: string, ifName = 'eth0'): JournalView | null {
  try {
    return parseJournal(readFileSync(journalFile(node, containerId, ifName), 'utf8')) as unknown as JournalView;
  } catch {
    return null;
  }
}

/** Runs the plugin in the node; the call's config and namespace come from the node. */
export function cni(node: TestNode, call: Omit<PluginCall, 'nodeNs' | 'config'> & { config?: unknown }): PluginResult {
  return runPlugin({ ...call, config: call.config ?? node.config(), nodeNs: node.name });
}

/** A readable line for assertion messages. */
export function show(r: PluginResult): string {
  return `exit ${r.code}; stdout ${r.stdout.trim() || '(empty)'}; stderr ${r.stderr.trim().slice(0, 1500)}`;
}
