// `testcni lab up`: underlay, etcd, one agent per node, then each node's pods in one burst.
// Every step records what it makes first (lab.json), so `lab down` cleans up after a crash.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentStatus } from '../ipam/agent-protocol.ts';
import { startEtcd } from './etcd.ts';
import { LabRecord, readLabState, type LabState } from './state.ts';
import { UNDERLAY, MAX_NODES, UNDERLAY_POD_RANGE, underlayNetns, createUnderlay, createNodeNetwork } from './topology.ts';
import { defineNode, writeAgentConfig, startAgent, waitAgentReady, waitNodesConverged, LAB_AGENT_TUNING, type AgentTuning } from './agents.ts';
import { MODES } from '../planner/registry.ts';
import { addPods } from './pods.ts';
import { netnsPath, LabError } from './sys.ts';

/** The modes the lab can run on this build (the registry's, less those it cannot carry). */
export const LAB_MODES: string[] = MODES.all().filter((m) => m.labUnsupported === null).map((m) => m.name);
export const MAX_PODS_PER_NODE = 250;
export const ROUTE_PROTOCOL = 151;
const ETCD_PORTS = { client: 2379, peer: 2380 };
/** a unix socket path longer than this does not fit in sockaddr_un */
const MAX_SOCKET_PATH = 107;

export interface UpOptions {
  name: string;
  dir: string;
  nodes: number;
  pods: number;
  mode: string;
  /** the built testcni entry (dist/testcni.cjs) the agents and pod ADDs run */
  binary: string;
  /** the Node.js executable (default: this process's) */
  nodeExec?: string;
  tuning?: Partial<AgentTuning>;
  readyTimeoutMs?: number;
  /** progress lines */
  log?: (line: string) => void;
}

export interface UpReport {
  /** the lab's record, for further changes that must land in lab.json */
  record: LabRecord;
  state: LabState;
  statuses: Map<string, AgentStatus>;
  /** milliseconds per phase */
  timings: Record<string, number>;
}

export function validateUp(o: UpOptions): void {
  if (!/^[a-z][a-z0-9-]{0,23}$/.test(o.name)) throw new LabError(`lab name ${JSON.stringify(o.name)}: use 1-24 of a-z, 0-9 and -, starting with a letter`);
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > MAX_NODES) throw new LabError(`--nodes must be 1..${MAX_NODES}`);
  if (!Number.isInteger(o.pods) || o.pods < 0 || o.pods > MAX_PODS_PER_NODE) throw new LabError(`--pods must be 0..${MAX_PODS_PER_NODE}`);
  const mode = MODES.get(o.mode);
  if (!mode) throw new LabError(`mode ${o.mode} is not one of ${MODES.names().join(', ')}`);
  if (mode.labUnsupported !== null) throw new LabError(`mode ${o.mode} cannot run in the lab here: ${mode.labUnsupported}`);
  if (mode.addressing.pool === 'subnet') {
    // Its pods share the underlay's pod range, above the nodes' own addresses.
    const r = UNDERLAY_POD_RANGE;
    if (o.nodes > r.maxNodes) throw new LabError(`--nodes must be 1..${r.maxNodes} in mode ${o.mode} (the underlay above them holds the pods)`);
    if (o.nodes * o.pods > r.size) throw new LabError(`${o.nodes} x ${o.pods} pods do not fit in mode ${o.mode}'s range ${r.start}-${r.end} (${r.size} addresses)`);
  }
  if (!existsSync(o.binary)) throw new LabError(`testcni binary ${o.binary} not found (npm run build)`);
  if (join(o.dir, `n${o.nodes}`, 'agent.sock').length > MAX_SOCKET_PATH) throw new LabError(`--dir ${o.dir} is too long for the agents' unix sockets`);
  if (readLabState(o.dir)) throw new LabError(`a lab exists in ${o.dir} already: remove it with \`testcni lab down\` first`);
  if (existsSync(o.dir) && readdirSync(o.dir).length > 0) throw new LabError(`${o.dir} is not empty: give another --dir`);
}

export async function labUp(o: UpOptions): Promise<UpReport> {
  validateUp(o);
  const mode = MODES.require(o.mode);
  const say = o.log ?? (() => {});
  const tuning = { ...LAB_AGENT_TUNING, ...o.tuning };
  const timings: Record<string, number> = {};
  const t0 = performance.now();
  let mark = t0;
  const lap = (phase: string) => {
    const now = performance.now();
    timings[phase] = Math.round(now - mark);
    mark = now;
  };

  mkdirSync(o.dir, { recursive: true, mode: 0o755 });
  const etcdDir = join(o.dir, 'etcd');
  const rec = new LabRecord({
    version: 1,
    name: o.name,
    dir: o.dir,
    mode: o.mode,
    binary: o.binary,
    nodeExec: o.nodeExec ?? process.execPath,
    createdAt: new Date().toISOString(),
    phase: 'creating',
    underlay: { netns: underlayNetns(o.name), bridge: UNDERLAY.bridge, gateway: UNDERLAY.gateway, prefix: UNDERLAY.prefix },
    routeProtocol: ROUTE_PROTOCOL,
    etcd: { pid: null, endpoint: `http://${UNDERLAY.gateway}:${ETCD_PORTS.client}`, dir: etcdDir, logFile: join(etcdDir, 'etcd.log') },
    netns: [],
    nodes: [],
    pods: [],
  });
  rec.save();
  try {
    await createUnderlay(rec);
    lap('underlay');
    say(`underlay  ${UNDERLAY.gateway}/${UNDERLAY.prefix} on ${UNDERLAY.bridge} in netns ${rec.state.underlay.netns}`);

    mkdirSync(etcdDir, { recursive: true, mode: 0o700 });
    const etcd = await startEtcd({
      netns: netnsPath(rec.state.underlay.netns),
      host: UNDERLAY.gateway,
      clientPort: ETCD_PORTS.client,
      peerPort: ETCD_PORTS.peer,
      dir: etcdDir,
      onStart: (pid) => rec.update((s) => void (s.etcd!.pid = pid)),
    });
    lap('etcd');
    say(`etcd      ${etcd.endpoint} (pid ${etcd.pid})`);

    const nodes = Array.from({ length: o.nodes }, (_, i) => defineNode(rec.state, i + 1, tuning));
    rec.update((s) => s.nodes.push(...nodes));
    for (const n of nodes) mkdirSync(n.dir, { recursive: true, mode: 0o755 });
    writeAgentConfig(rec.state);
    await Promise.all(nodes.map((n) => createNodeNetwork(rec, n)));
    lap('nodes');
    await Promise.all(nodes.map((n) => startAgent(rec, n)));
    const ready = await Promise.all(nodes.map((n) => waitAgentReady(n, o.readyTimeoutMs)));
    lap('agents');
    const statuses = new Map(ready.map((st) => [st.node, st]));
    for (const n of nodes) {
      const st = statuses.get(n.name)!;
      if (st.underlayIp !== n.underlayIp) throw new LabError(`agent of ${n.name} detected underlay ${st.underlayIp}, expected ${n.underlayIp}`);
      const pool = mode.addressing.pool === 'subnet' ? `pods from ${UNDERLAY_POD_RANGE.start}-${UNDERLAY_POD_RANGE.end} (shared)` : `block ${st.block}`;
      say(`node      ${n.name.padEnd(4)} ${n.underlayIp.padEnd(13)} ${pool}  netns ${n.netns}`);
    }
    await waitNodesConverged(nodes);
    lap('converge');
    say(`nodes     node state converged on ${nodes.length} node(s)`);

    const outcomes = await addPods(rec, nodes.flatMap((node) => Array.from({ length: o.pods }, (_, j) => ({ node, name: `p${j + 1}` }))));
    lap('pods');
    const failed = outcomes.filter((x) => x.add.code !== 0);
    if (failed.length > 0) throw new LabError(`${failed.length} pod ADD(s) failed: ${failed.map((x) => `${x.pod.name}: ${x.pod.error}`).join('; ')}`);
    if (outcomes.length > 0) say(`pods      ${outcomes.length} attached (${o.pods} per node, each node's in one burst) in ${timings.pods} ms`);

    rec.update((s) => void (s.phase = 'up'));
    timings.total = Math.round(performance.now() - t0);
    return { record: rec, state: rec.state, statuses, timings };
  } catch (e) {
    rec.update((s) => void (s.phase = 'failed'));
    throw e;
  }
}
