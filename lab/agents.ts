// One testcni agent per lab node, run inside the node's netns as a DaemonSet pod would run on
// its host. Its PID is recorded as soon as it exists; it is stopped by that PID only.
import { join } from 'node:path';
import { startDaemon } from '../executor/runner.ts';
import { AgentStore } from '../ipam/agent-store.ts';
import type { AgentStatus } from '../ipam/agent-protocol.ts';
import type { LabRecord, LabState, LabNode } from './state.ts';
import { inNetns, ownedPid, stopOwned, waitUntil, logTail, LabError } from './sys.ts';
import { nodeNetns, nodeUnderlayIp, underlaySubnet, UNDERLAY, UNDERLAY_POD_RANGE } from './topology.ts';
import { MODES } from '../planner/registry.ts';
import { writeFileAtomic } from '../lib/atomic-file.ts';

export const METRICS_PORT = 9603;

export interface AgentTuning {
  /** node registration lease: how long a dead node's routes linger elsewhere */
  leaseTtlSeconds: number;
  resyncSeconds: number;
  /** serve /metrics on <underlay ip>:9603 inside each node */
  metrics: boolean;
}

export const LAB_AGENT_TUNING: AgentTuning = { leaseTtlSeconds: 3, resyncSeconds: 5, metrics: false };

/** The agents' shared config file (only for modes whose pods live on the node network). */
export function agentConfigPath(s: LabState): string {
  return join(s.dir, 'agent.json');
}

/** Options that depend on where the mode's pods get their addresses: blocks of the default
 *  cluster subnet, or (pool `subnet`) the pod range of the underlay, from a config file that
 *  writeAgentConfig writes. */
function addressingArgs(s: LabState): string[] {
  if (MODES.require(s.mode).addressing.pool !== 'subnet') return [];
  return ['--cluster-subnet', underlaySubnet(), '--config', agentConfigPath(s)];
}

/** Writes the agents' config file when their mode needs one (see addressingArgs). */
export function writeAgentConfig(s: LabState): void {
  if (MODES.require(s.mode).addressing.pool !== 'subnet') return;
  const ipam = { rangeStart: UNDERLAY_POD_RANGE.start, rangeEnd: UNDERLAY_POD_RANGE.end, gateway: UNDERLAY.gateway };
  writeFileAtomic(agentConfigPath(s), JSON.stringify({ networkConfig: { ipam } }, null, 2) + '\n', { mode: 0o644 });
}

/** A node's record: names, addresses, paths and the agent command line. */
export function defineNode(s: LabState, index: number, tuning: AgentTuning): LabNode {
  const name = `n${index}`;
  const dir = join(s.dir, name);
  const node: LabNode = {
    name,
    netns: nodeNetns(s.name, name),
    underlayIp: nodeUnderlayIp(index),
    dir,
    socket: join(dir, 'agent.sock'),
    stateDir: join(dir, 'state'),
    confDir: join(dir, 'net.d'),
    logFile: join(dir, 'agent.log'),
    agentArgv: [],
    agentPid: null,
  };
  // No --underlay-ip: the agent finds it from the node's default route, as on a real host.
  node.agentArgv = inNetns(node.netns, [
    s.nodeExec, s.binary, 'agent',
    '--node-name', name,
    '--etcd-endpoints', s.etcd!.endpoint,
    '--mode', s.mode,
    '--network', s.name,
    '--socket', node.socket,
    '--state-dir', node.stateDir,
    '--cni-conf-dir', node.confDir,
    '--metrics-address', tuning.metrics ? `${node.underlayIp}:${METRICS_PORT}` : 'off',
    '--lease-ttl', String(tuning.leaseTtlSeconds),
    '--resync', String(tuning.resyncSeconds),
    '--route-protocol', String(s.routeProtocol),
    ...addressingArgs(s),
  ]);
  return node;
}

export function agentRunning(node: LabNode): boolean {
  return ownedPid(node.agentPid, node.socket);
}

export async function startAgent(rec: LabRecord, node: LabNode): Promise<number> {
  if (agentRunning(node)) throw new LabError(`the agent of ${node.name} is already running (pid ${node.agentPid})`);
  const pid = await startDaemon(node.agentArgv, { logFile: node.logFile });
  rec.update(() => {
    node.agentPid = pid;
  });
  return pid;
}

/** Stops a node's agent (SIGTERM: a clean stop; SIGKILL: a crash) and waits until it is gone. */
export async function stopAgent(rec: LabRecord, node: LabNode, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  await stopOwned(node.agentPid, node.socket, signal);
  rec.update(() => {
    node.agentPid = null;
  });
}

/** The agent's own report, or null when it does not answer. */
export async function agentStatus(node: LabNode, timeoutMs = 1000): Promise<AgentStatus | null> {
  try {
    return await new AgentStore(node.socket, timeoutMs).agentStatus();
  } catch {
    return null;
  }
}

/** Waits until the agent answers ready; fails early, with its log, if it died. */
export async function waitAgentReady(node: LabNode, timeoutMs = 30_000): Promise<AgentStatus> {
  let last: AgentStatus | null = null;
  return waitUntil(
    async () => {
      if (!agentRunning(node)) throw new LabError(`the agent of ${node.name} exited:\n${logTail(node.logFile)}`);
      last = await agentStatus(node);
      return last?.ready ? last : null;
    },
    timeoutMs,
    () => `agent of ${node.name} not ready (${last ? last.reason ?? 'unknown' : 'no answer on ' + node.socket}); log ${node.logFile}:\n${logTail(node.logFile)}`,
  );
}

/** Waits until every node's agent knows exactly `nodes` and has converged its node state for
 *  them (whatever its mode's node plan holds: routes, devices, map entries, BIRD's config). */
export async function waitNodesConverged(nodes: LabNode[], timeoutMs = 10_000): Promise<void> {
  const want = nodes.map((n) => n.name).sort().join(',');
  const pending = new Map<string, string>();
  await Promise.all(
    nodes.map((node) =>
      waitUntil(
        async () => {
          const st = await agentStatus(node);
          const known = st ? st.nodes.map((n) => n.name).sort().join(',') : '(no answer)';
          pending.set(node.name, st ? `knows ${known}, converged ${st.converged}${st.lastReconcile?.error ? `, last error: ${st.lastReconcile.error}` : ''}` : 'no answer');
          return st !== null && known === want && st.converged;
        },
        timeoutMs,
        () => `node state of ${node.name} did not converge for ${want}: ${pending.get(node.name)}`,
      )),
  );
}
