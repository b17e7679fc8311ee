// `testcni status`: readiness (as CNI STATUS decides it), IPAM usage, this node's attachments,
// and with cluster IPAM the node agent's view: node, block, peers and their routes, etcd.
import { existsSync } from 'node:fs';
import type { NetworkConfig } from '../model/config.ts';
import { readiness, type Readiness } from '../cni/verbs/status.ts';
import { MODES } from '../planner/registry.ts';
import { JournalStore } from '../executor/journal.ts';
import { AgentStore } from '../ipam/agent-store.ts';
import type { AgentStatus } from '../ipam/agent-protocol.ts';
import { textTable } from '../lib/text-table.ts';
import type { DaemonStatus } from '../model/daemon.ts';
import type { ModeReport } from '../planner/mode.ts';
import { gatherFacts } from '../executor/facts.ts';
import { inspectWith } from '../executor/probe.ts';
import { ProcessRunner } from '../executor/runner.ts';
import { realSystem } from '../executor/system.ts';
import { factsWanted } from '../cni/verbs/context.ts';

export interface StatusReport extends Readiness {
  network: string;
  mode: string;
  ipamType: string;
  block: string | null;
  attachments: { containerId: string; ifName: string; state: string; ip: string; netns: string; netnsExists: boolean }[];
  agent: AgentStatus | { error: string } | null;
  /** the mode's view of the node state it keeps (vxlan: programs attached, maps' fill) */
  node: ModeReport | null;
}

/** The mode's operator view of this node (ModeDefinition.inspect), read now. */
async function inspectNode(config: NetworkConfig): Promise<ModeReport | null> {
  const mode = MODES.require(config.mode);
  if (!mode.inspect) return null;
  const runner = new ProcessRunner();
  const facts = await gatherFacts(factsWanted(config, mode, { add: true }), runner);
  return inspectWith(mode.inspect, config, facts, runner, realSystem);
}

export async function gatherStatus(config: NetworkConfig): Promise<StatusReport> {
  const r = await readiness(config, MODES.require(config.mode));
  const journals = new JournalStore(config.stateDir);
  const attachments = journals.list(config.name).map((a) => {
    const j = journals.readOrNull(a);
    return { containerId: a.containerId, ifName: a.ifName, state: j?.state ?? 'unreadable', ip: j?.plan.result?.ips[0]?.address ?? j?.lease?.address ?? '', netns: j?.netns ?? '', netnsExists: j ? existsSync(j.netns) : false };
  });
  let agent: StatusReport['agent'] = null;
  if (config.ipam.type === 'cluster') {
    try {
      agent = await new AgentStore(config.ipam.agentSocket, 3000).agentStatus();
    } catch (e) {
      agent = { error: `${(e as Error).message}${(e as { details?: string }).details ? `: ${(e as { details?: string }).details}` : ''}` };
    }
  }
  const block = agent && 'block' in agent ? agent.block : config.ipam.type === 'file' ? config.ipam.block : null;
  return { ...r, network: config.name, mode: config.mode, ipamType: config.ipam.type, block, attachments, agent, node: await inspectNode(config) };
}

export function renderStatus(s: StatusReport, config: NetworkConfig): string {
  const lines = [
    `network   ${s.network} (mode ${s.mode}, cniVersion ${config.cniVersion})`,
    `ready     ${s.ready ? 'yes' : 'NO: ' + s.problems.join('; ')}`,
  ];
  if (config.ipam.type === 'file') {
    lines.push(`block     ${config.ipam.block}  range ${config.ipam.rangeStart}-${config.ipam.rangeEnd}  gateway ${config.ipam.gateway}`);
    lines.push(`ipam      ${s.ipam ? `${s.ipam.used} used, ${s.ipam.free} free` : 'unavailable'} (file, ${config.ipam.dataDir})`);
  } else if (s.agent && 'error' in s.agent) {
    lines.push(`agent     UNREACHABLE: ${s.agent.error}`);
  } else if (s.agent) {
    const a = s.agent;
    lines.push(`agent     ${a.ready ? 'ready' : `NOT READY: ${a.reason ?? ''}`} (${config.ipam.agentSocket}, version ${a.version})`);
    lines.push(`node      ${a.node}  underlay ${a.underlayIp}  registered ${a.registeredAt ?? 'no'}${a.registrationLapsed ? ' (lease lapsed: registering again)' : ''}`);
    lines.push(`block     ${a.block ?? '(none claimed)'}  gateway ${a.gateway ?? '-'}`);
    lines.push(`leases    ${a.ipam ? `${a.ipam.used} addresses used, ${a.ipam.free} free` : 'unknown'}`);
    lines.push(`etcd      ${a.etcd.reachable ? 'reachable' : 'UNREACHABLE'} (${a.etcd.endpoints.join(', ')}; checked ${a.etcd.lastCheck ?? 'never'})`);
    const rc = a.lastReconcile;
    lines.push(`routes    ${rc ? `${rc.ok ? 'converged' : `FAILED: ${rc.error ?? ''}`} at ${rc.at}` : 'not reconciled yet'}`);
    lines.push('', 'PEERS');
    const via = new Map(a.routes.map((r) => [r.dst, r.via]));
    const peers = a.nodes.map((n) => [n.name, n.underlayIp, n.block,
      n.name === a.node ? '(this node)' : via.get(n.block) === n.underlayIp ? `route via ${n.underlayIp}` : 'NO ROUTE']);
    for (const name of a.leaving ?? []) peers.push([name, '', '', 'left: routes kept for the grace period']);
    lines.push(...textTable([['NODE', 'UNDERLAY', 'BLOCK', 'ROUTE'], ...peers]).map((l) => `  ${l}`));
    if (rc?.waitingFor) lines.push(`  waiting for ${rc.waitingFor}`);
    for (const d of a.daemons ?? []) lines.push('', ...renderDaemon(d));
    if ((a.daemons ?? []).length > 0) lines.push('');
  }
  if (s.node) {
    lines.push(`node      ${s.node.problems.length === 0 ? 'dataplane as it should be' : `PROBLEMS: ${s.node.problems.join('; ')}`}`);
    for (const t of s.node.tables) lines.push('', t.title, ...(t.rows.length > 1 ? textTable(t.rows) : [...textTable(t.rows), '(none)']).map((l) => `  ${l}`));
    lines.push('');
  }
  lines.push(`state     ${config.stateDir}`, '', 'ATTACHMENTS');
  if (s.attachments.length === 0) lines.push('  (none)');
  else {
    lines.push(...textTable([['CONTAINER', 'IF', 'ADDRESS', 'STATE', 'NETNS'],
      ...s.attachments.map((a) => [a.containerId.slice(0, 24), a.ifName, a.ip, a.state, `${a.netns}${a.netnsExists ? '' : ' (gone)'}`])]).map((l) => `  ${l}`));
  }
  return lines.join('\n') + '\n';
}

/** A node daemon (BIRD for ipip) and its sessions: peer, state, since, routes in and out. */
export function renderDaemon(d: DaemonStatus): string[] {
  const lines = [
    `DAEMON ${d.name}  ${d.running ? `running (pid ${d.pid}, since ${d.startedAt})` : 'NOT RUNNING'}, ${d.reloads} reload(s), ${d.restarts} restart(s)` +
      `${d.lastError ? `; last error: ${d.lastError}` : ''}`,
    `  config ${d.config}${d.lastReloadAt ? `, last reload ${d.lastReloadAt}` : ''}`,
  ];
  if (d.sessionsError) lines.push(`  sessions unreadable: ${d.sessionsError}`);
  if (d.sessions) {
    const up = d.sessions.filter((x) => x.established).length;
    lines.push(`  ${up} of ${d.sessions.length} session(s) established`);
    if (d.sessions.length > 0) {
      lines.push(...textTable([['SESSION', 'PEER', 'AS', 'STATE', 'SINCE', 'ROUTES IN', 'ROUTES OUT', 'LAST ERROR'],
        ...d.sessions.map((x) => [x.name, x.peer, String(x.peerAs ?? '-'), x.state, x.since, String(x.routes.imported), String(x.routes.exported), x.lastError ?? ''])]).map((l) => `  ${l}`));
    }
  }
  return lines;
}
