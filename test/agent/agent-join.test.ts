// Agents that start at the same moment must see each other through the registry watch alone:
// the periodic resync is set far beyond the test, so a join missed between an agent's first
// listing and its watch would leave a route missing. Real agents (dist/testcni.cjs agent), each
// in its own node netns on an underlay bridge netns with etcd on 198.18.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { rootSkipReason, uniquePrefix, addNetns, delNetns, sh, PLUGIN, NETNS_DIR } from '../helpers/netns.ts';
import { startEtcd, stopPid, etcdAvailable } from '../../lab/etcd.ts';
import { startDaemon } from '../../executor/runner.ts';
import { AgentStore } from '../../ipam/agent-store.ts';
import { parseRoutes, type NodeRoute } from '../../planner/node-routes.ts';

const skip = rootSkipReason() ?? etcdAvailable() ?? false;
const PROTO = 151;

interface Node {
  name: string;
  netns: string;
  underlayIp: string;
  socket: string;
  pid: number | null;
}

async function until<T>(what: () => string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const kernelRoutes = (n: Node): NodeRoute[] =>
  parseRoutes(JSON.parse(sh(['ip', '-n', n.netns, '-j', 'route', 'show', 'proto', String(PROTO)]).stdout || '[]')).sort((a, b) => a.dst.localeCompare(b.dst));

test('agents starting together route to each other without waiting for a resync', { skip }, async (t) => {
  const prefix = uniquePrefix('aj');
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const underlay = `${prefix}u`;
  const nodes: Node[] = [];
  let etcdPid: number | null = null;
  t.after(async () => {
    for (const n of nodes) if (n.pid) await stopPid(n.pid);
    if (etcdPid) await stopPid(etcdPid);
    for (const n of nodes) delNetns(n.netns);
    delNetns(underlay);
    rmSync(dir, { recursive: true, force: true });
  });

  addNetns(underlay);
  sh(['ip', '-n', underlay, 'link', 'add', 'br0', 'type', 'bridge']);
  sh(['ip', '-n', underlay, 'addr', 'add', '198.18.0.1/24', 'dev', 'br0']);
  sh(['ip', '-n', underlay, 'link', 'set', 'br0', 'up']);
  mkdirSync(join(dir, 'etcd'));
  const etcd = await startEtcd({ netns: join(NETNS_DIR, underlay), host: '198.18.0.1', clientPort: 2379, peerPort: 2380, dir: join(dir, 'etcd'), onStart: (pid) => (etcdPid = pid) });

  const addNode = (i: number): Node => {
    const n: Node = { name: `n${i}`, netns: `${prefix}n${i}`, underlayIp: `198.18.0.${10 + i}`, socket: join(dir, `n${i}`, 'agent.sock'), pid: null };
    nodes.push(n);
    addNetns(n.netns);
    sh(['ip', '-n', n.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `v${i}`, 'netns', underlay]);
    sh(['ip', '-n', n.netns, 'addr', 'add', `${n.underlayIp}/24`, 'dev', 'eth0']);
    sh(['ip', '-n', n.netns, 'link', 'set', 'eth0', 'up']);
    sh(['ip', '-n', underlay, 'link', 'set', `v${i}`, 'master', 'br0', 'up']);
    mkdirSync(join(dir, n.name));
    return n;
  };
  const startAgents = (batch: Node[]) =>
    Promise.all(batch.map(async (n) => {
      n.pid = await startDaemon(['/usr/bin/nsenter', `--net=${join(NETNS_DIR, n.netns)}`, '--', process.execPath, PLUGIN, 'agent',
        '--node-name', n.name, '--underlay-ip', n.underlayIp, '--etcd-endpoints', etcd.endpoint, '--socket', n.socket,
        '--state-dir', join(dir, n.name, 'state'), '--metrics-address', 'off', '--lease-ttl', '5', '--resync', '600'], { logFile: join(dir, n.name, 'agent.log') });
    }));
  /** Every node's kernel routes exactly to the other nodes' blocks via their underlay address. */
  const converged = async (batch: Node[], timeoutMs: number) => {
    const blocks = new Map<string, string>();
    for (const n of batch) {
      const st = await until(() => `${n.name} ready`, 20_000, async () => {
        try {
          const s = await new AgentStore(n.socket, 1000).agentStatus();
          return s.ready ? s : null;
        } catch {
          return null;
        }
      });
      blocks.set(n.name, st.block!);
    }
    const want = (self: Node) => batch.filter((o) => o !== self).map((o) => ({ dst: blocks.get(o.name)!, via: o.underlayIp })).sort((a, b) => a.dst.localeCompare(b.dst));
    let last = '';
    await until(() => `routes converge; last: ${last}`, timeoutMs, async () => {
      const bad = batch.filter((n) => JSON.stringify(kernelRoutes(n)) !== JSON.stringify(want(n)));
      last = bad.map((n) => `${n.name} has ${JSON.stringify(kernelRoutes(n))}`).join('; ');
      return bad.length === 0 ? true : null;
    });
    assert.equal(new Set(blocks.values()).size, batch.length, 'every node has its own block');
  };

  const first = [1, 2, 3, 4, 5].map(addNode);
  await startAgents(first);
  await converged(first, 5000);
  // A second wave joins a running cluster, again all at once.
  const second = [6, 7, 8].map(addNode);
  await startAgents(second);
  await converged([...first, ...second], 5000);
});
