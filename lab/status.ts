// `testcni lab status`: nodes (underlay, block, agent health, the routes in their kernels) and
// pods with their addresses, from lab.json, the agents' own reports and the kernel.
import type { LabState } from './state.ts';
import type { NodeRoute } from '../planner/node-routes.ts';
import { agentRunning, agentStatus } from './agents.ts';
import { nodeRoutes, sortRoutes } from './topology.ts';
import { ownedPid } from './sys.ts';
import { textTable } from '../lib/text-table.ts';

export interface LabStatusReport {
  name: string;
  dir: string;
  mode: string;
  phase: LabState['phase'];
  etcd: { endpoint: string; pid: number | null; running: boolean } | null;
  nodes: {
    name: string;
    netns: string;
    underlayIp: string;
    block: string | null;
    agent: { pid: number | null; running: boolean; ready: boolean; reason?: string };
    ipam: { used: number; free: number } | null;
    routes: NodeRoute[];
  }[];
  pods: { name: string; node: string; netns: string; containerId: string; ifName: string; ip: string | null; state: string }[];
}

export async function labStatus(s: LabState): Promise<LabStatusReport> {
  const nodes = await Promise.all(
    s.nodes.map(async (n) => {
      const running = agentRunning(n);
      const st = running ? await agentStatus(n) : null;
      const reason = !running ? 'agent not running' : !st ? 'agent does not answer' : st.ready ? undefined : st.reason;
      // The agent reports the routes its mode's node state holds (whoever installs them: the
      // agent itself, or BIRD for ipip); without an agent, the kernel's routes of the agent's.
      let routes: NodeRoute[] = st ? sortRoutes(st.routes) : [];
      if (!st) {
        try {
          routes = await nodeRoutes(s, n);
        } catch { /* the node netns is gone (half-built lab) */ }
      }
      return {
        name: n.name,
        netns: n.netns,
        underlayIp: n.underlayIp,
        block: st?.block ?? null,
        agent: { pid: n.agentPid, running, ready: st?.ready ?? false, ...(reason ? { reason } : {}) },
        ipam: st?.ipam ?? null,
        routes,
      };
    }),
  );
  return {
    name: s.name,
    dir: s.dir,
    mode: s.mode,
    phase: s.phase,
    etcd: s.etcd ? { endpoint: s.etcd.endpoint, pid: s.etcd.pid, running: ownedPid(s.etcd.pid, s.etcd.dir) } : null,
    nodes,
    pods: s.pods.map((p) => ({ name: p.name, node: p.node, netns: p.netns, containerId: p.containerId, ifName: p.ifName, ip: p.ip, state: p.state })),
  };
}

export function renderStatus(r: LabStatusReport): string {
  const lines = [
    `lab    ${r.name} (${r.mode}, ${r.phase})  dir ${r.dir}`,
    `etcd   ${r.etcd ? `${r.etcd.endpoint}  pid ${r.etcd.pid ?? '-'}  ${r.etcd.running ? 'running' : 'NOT RUNNING'}` : 'none'}`,
    '',
    ...textTable([
      ['NODE', 'UNDERLAY', 'BLOCK', 'AGENT', 'IPAM', 'ROUTES'],
      ...r.nodes.map((n) => [
        n.name,
        n.underlayIp,
        n.block ?? '-',
        n.agent.ready ? `ready (pid ${n.agent.pid})` : `NOT READY: ${n.agent.reason ?? ''}`,
        n.ipam ? `${n.ipam.used} used` : '-',
        n.routes.map((x) => `${x.dst} via ${x.via}`).join(', ') || '(none)',
      ]),
    ]),
    '',
  ];
  if (r.pods.length === 0) lines.push('(no pods)');
  else lines.push(...textTable([['POD', 'NODE', 'ADDRESS', 'STATE', 'NETNS'], ...r.pods.map((p) => [p.name, p.node, p.ip ?? '-', p.state, p.netns])]));
  return lines.join('\n') + '\n';
}
