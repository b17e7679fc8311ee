// A simulated node for dataplane tests and benchmarks: its own netns on a test underlay, a process
// living in it (where pod veths put their host end), its config and facts, and the real Executor
// and the mode's planners driven through node-in-netns.ts. Pods are added with the mode's ADD plan
// (compile + Executor.apply), node state with its node plan (observe, plan, converge).
import { spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { release } from 'node:os';
import type { NodeFacts, Plan, Probe, Step } from '../../model/plan.ts';
import type { NodeRecord } from '../../model/node.ts';
import type { NetworkConfig } from '../../model/config.ts';
import { loadConfig } from '../../cni/config.ts';
import { compile, teardownSteps } from '../../planner/compile.ts';
import { MODES } from '../../planner/registry.ts';
import type { AnyMode, NodeContext } from '../../planner/mode.ts';
import { Executor } from '../../executor/executor.ts';
import { JournalStore } from '../../executor/journal.ts';
import { queryOutput, runProbe } from '../../executor/probe.ts';
import { resolveTools, findObject } from '../../executor/facts.ts';
import { nodeRunner, nodeSystem } from './node-in-netns.ts';
import { NETNS_DIR, toolPath } from './netns.ts';
import { VXLAN_OBJECT } from './bpf.ts';

export const VXLAN = MODES.require('vxlan');

/** What keeps the cleanups (a test's Scope, or a benchmark's own list). */
export interface Cleanups {
  defer(fn: () => void): void;
}
export const ROUTE_PROTOCOL = 151;

export interface SimPod {
  name: string;
  ns: string;
  path: string;
  ip: string;
  containerId: string;
  hostVeth: string;
  plan: Plan;
  node: SimNode;
}

export interface SimNode<S = any> {
  name: string;
  ns: string;
  mode: AnyMode;
  record: NodeRecord;
  gateway: string;
  config: NetworkConfig<string, S>;
  facts: NodeFacts;
  executor: Executor;
  /** runs a query of a planner in the node */
  query(queries: Record<string, Probe>): Promise<Record<string, unknown>>;
  probe(p: Probe): Promise<boolean>;
  /** observe + plan of the node planner for this registry (nothing applied) */
  nodePlan(nodes: NodeRecord[]): Promise<Step[]>;
  /** the node plan applied step by step (each probe must hold after its step); returns the ids */
  reconcile(nodes: NodeRecord[]): Promise<string[]>;
}

export interface SimNodeSpec {
  /** default vxlan */
  mode?: string;
  name: string;
  ns: string;
  underlayIp: string;
  block: string;
  network: string;
  subnet: string;
  /** extra keys of the network config (the vxlan section, …) */
  extra?: Record<string, unknown>;
  stateDir: string;
}

/** A process that lives in the node's netns for the test's lifetime: the veths' host ends are
 *  born in its namespace (the plugin uses its own PID the same way). */
function sleeper(scope: Cleanups, ns: string): ChildProcess {
  const child = spawn(toolPath('nsenter') ?? 'nsenter', [`--net=${join(NETNS_DIR, ns)}`, '--', 'sleep', '3600'], { stdio: 'ignore' });
  scope.defer(() => child.kill('SIGKILL'));
  return child;
}

export function simNode(scope: Cleanups, spec: SimNodeSpec): SimNode {
  const proc = sleeper(scope, spec.ns);
  const mode = MODES.require(spec.mode ?? 'vxlan');
  const { config } = loadConfig({
    cniVersion: '1.1.0', name: spec.network, type: 'testcni', mode: mode.name, subnet: spec.subnet,
    ipam: { block: spec.block }, stateDir: spec.stateDir, ...spec.extra,
  });
  const objects = mode.objects?.(config) ?? [];
  const facts: NodeFacts = {
    tools: resolveTools([...mode.tools(config), 'iptables']),
    hostPid: proc.pid!,
    uplink: 'eth0',
    uplinkMtu: 1500,
    netns: String(statSync(join(NETNS_DIR, spec.ns)).ino),
    kernel: release(),
    ...(objects.length ? { objects: Object.fromEntries(objects.map((o) => [o, findObject(o, [dirname(VXLAN_OBJECT)])])) } : {}),
  };
  const runner = nodeRunner(spec.ns);
  const sys = nodeSystem(spec.ns);
  const executor = new Executor({ runner, facts, journals: new JournalStore(spec.stateDir), sys });
  const record = { name: spec.name, underlayIp: spec.underlayIp, block: spec.block };
  const query = async (queries: Record<string, Probe>) => {
    const out: Record<string, unknown> = {};
    for (const [k, q] of Object.entries(queries)) {
      const o = await queryOutput(q, facts, runner, sys);
      out[k] = o.json ?? (o.exitCode === 0 ? o.stdout : null);
    }
    return out;
  };
  const node: SimNode = {
    name: spec.name,
    ns: spec.ns,
    mode,
    record,
    gateway: config.ipam.gateway,
    config,
    facts,
    executor,
    query,
    probe: (p) => runProbe(p, facts, runner, sys),
    async nodePlan(nodes) {
      const ctx: NodeContext = { config, facts, self: record, nodes, routeProtocol: ROUTE_PROTOCOL, underlaySubnet: null, dirs: { run: spec.stateDir, state: spec.stateDir }, secrets: {} };
      const planner = mode.node!;
      const observed = await query(planner.observe(ctx));
      if (planner.observeMore) Object.assign(observed, await query(planner.observeMore(ctx, observed)));
      return planner.plan(ctx, observed);
    },
    async reconcile(nodes) {
      const steps = await node.nodePlan(nodes);
      for (const s of steps) {
        const r = await executor.converge([s]);
        if (r.errors.length > 0) throw new Error(`${s.id}: ${JSON.stringify(r.errors)}`);
        if (s.probe && s.probe.mech !== 'path') {
          if (!(await node.probe(s.probe))) throw new Error(`${s.id}: its probe does not hold after it ran`);
        }
      }
      return steps.map((s) => s.id);
    },
  };
  return node;
}

export async function addPod(node: SimNode, pod: { name: string; path: string; containerId: string; ip: string }): Promise<SimPod> {
  const lease = { address: `${pod.ip}/${node.config.ipam.block.split('/')[1]}`, gateway: node.gateway };
  const plan = compile({ command: 'ADD', config: node.config, containerId: pod.containerId, ifName: 'eth0', netns: pod.path, lease, facts: node.facts }, node.mode);
  await node.executor.apply(plan, lease);
  const hostVeth = plan.result!.interfaces.find((i) => i.sandbox === undefined && i.name.startsWith('tc'))!.name;
  return { ...pod, ns: pod.name, hostVeth, plan, node };
}

/** DEL as the plugin does it with a journal: the undo of what ADD applied, newest first. */
export async function delPod(p: SimPod): Promise<string[]> {
  const r = await p.node.executor.teardown(teardownSteps(p.plan.steps));
  if (r.errors.length > 0) throw new Error(JSON.stringify(r.errors));
  return r.undone;
}

