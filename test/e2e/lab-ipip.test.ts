// ipip end to end on the lab (lab/), ipipMode never (this kernel has no ipip device; the tunnel
// datapath runs in the VM, test/e2e/vm-datapath.test.ts): 3 node namespaces, a real etcd, one
// agent per node running a real BIRD from the mode's node plan, 3 pods per node attached by the
// built plugin. BGP sessions, the kernel routes BIRD installs, all pairs, a pod answering right
// after its ADD, BIRD killed, a node leaving and joining (one reload each), gobgpd as an
// external peer of one node through its agent, `testcni status` and the metrics.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { inNetns, PLUGIN } from '../helpers/netns.ts';
import { labSkipReason, testLab } from '../helpers/lab.ts';
import { bgpSkipReason, waitFor } from '../helpers/bgp.ts';
import type { LabRecord, LabNode } from '../../lab/state.ts';
import { pingAll, pingFrom, renderMatrix } from '../../lab/check.ts';
import { addPods } from '../../lab/pods.ts';
import { agentStatus, startAgent, stopAgent, waitAgentReady, waitNodesConverged, METRICS_PORT } from '../../lab/agents.ts';
import { netnsPath, stopPid } from '../../lab/sys.ts';
import { startDaemon } from '../../executor/runner.ts';
import { findTool } from '../../executor/facts.ts';
import { LAB_TIMERS } from '../../planner/modes/ipip/index.ts';
import type { AgentStatus } from '../../ipam/agent-protocol.ts';
import type { DaemonStatus } from '../../model/daemon.ts';

const skip = labSkipReason() ?? bgpSkipReason(['gobgpd', 'gobgp']);

interface Route {
  dst: string;
  gateway?: string;
  dev?: string;
  type?: string;
}

const routes = (node: LabNode, ...filter: string[]): Route[] =>
  JSON.parse(inNetns(node.netns, ['ip', '-j', 'route', 'show', ...filter]).stdout || '[]') as Route[];
const byDst = (a: { dst: string }, b: { dst: string }) => (a.dst < b.dst ? -1 : 1);

async function status(node: LabNode): Promise<AgentStatus> {
  const st = await agentStatus(node, 5000);
  assert.ok(st, `the agent of ${node.name} answers`);
  return st;
}

async function bird(node: LabNode): Promise<DaemonStatus> {
  const d = (await status(node)).daemons?.find((x) => x.name === 'bird');
  assert.ok(d, `${node.name} runs BIRD`);
  return d;
}

describe('ipip lab, BGP with BIRD (ipipMode never): 3 nodes x 3 pods', { skip, timeout: 240_000 }, () => {
  const lab = testLab('il', 'ipip', { 'ipip-mode': 'never' });
  let rec: LabRecord;
  let nodes: LabNode[];
  const blocks = new Map<string, string>();
  /** What the kernel of `node` should hold from BIRD: every other member's block via its address. */
  const fromBird = (node: LabNode, members: LabNode[]) =>
    members.filter((o) => o !== node).map((o) => ({ dst: blocks.get(o.name)!, gateway: o.underlayIp })).sort(byDst);
  const birdRoutes = (node: LabNode) => routes(node, 'proto', 'bird').map((r) => ({ dst: r.dst, gateway: r.gateway })).sort(byDst);
  const routesConverged = (members: LabNode[]) => members.every((n) => JSON.stringify(birdRoutes(n)) === JSON.stringify(fromBird(n, members)));

  before(async () => {
    const up = await lab.up(3, 0, { metrics: true });
    rec = up.record;
    nodes = rec.state.nodes;
    for (const [name, st] of up.statuses) blocks.set(name, st.block!);
  });
  after(() => lab.down());

  it('each agent runs BIRD in its node: every session Established, the other blocks in the kernel from BIRD, its own as the agent\'s blackhole', async () => {
    for (const n of nodes) {
      const b = await bird(n);
      assert.equal(b.running, true);
      const others = nodes.filter((o) => o !== n);
      assert.deepEqual(b.sessions!.map((s) => [s.peer, s.state, s.peerAs, s.routes.imported, s.routes.exported]).sort(),
        others.map((o) => [o.underlayIp, 'Established', 64512, 1, 1]).sort(), `sessions of ${n.name}`);
      assert.deepEqual(birdRoutes(n), fromBird(n, nodes), `routes BIRD installed in ${n.name} (protocol 12)`);
      assert.deepEqual(routes(n, 'proto', '151').map((r) => [r.type, r.dst]), [['blackhole', blocks.get(n.name)]], `the agent's routes in ${n.name}: its block's blackhole only`);
      // Its own process, files and socket in the node's directories; output to its log, not inherited.
      assert.equal(spawnSync('ip', ['netns', 'identify', String(b.pid)], { encoding: 'utf8' }).stdout.trim(), n.netns, 'BIRD runs in its node\'s namespace');
      assert.equal(Number(readFileSync(join(n.dir, 'bird.pid'), 'utf8')), b.pid);
      assert.equal(b.config, join(n.stateDir, 'bird', 'bird.conf'));
      for (const fd of ['1', '2']) assert.equal(readlinkSync(`/proc/${b.pid}/fd/${fd}`), join(n.stateDir, 'bird', 'bird.log'));
      const st = await status(n);
      assert.equal(st.converged, true);
      assert.deepEqual(st.routes.map((r) => r.dst).sort(), others.map((o) => blocks.get(o.name)!).sort(), 'the agent reports BIRD\'s routes');
    }
  });

  it('the first pod answers a ping from another node right after its ADD', async () => {
    const [first] = await addPods(rec, [{ node: nodes[0]!, name: 'p1' }]);
    assert.equal(first!.add.code, 0, first!.add.stdout + first!.add.stderr);
    const ip = first!.pod.ip!;
    assert.equal(await pingFrom(nodes[1]!.netns, ip, 1), true, `n2 -> ${ip}: one echo, no retry`);
    assert.equal(await pingFrom(nodes[0]!.netns, ip, 1), true, `n1 -> ${ip}`);
  });

  it('3 x 3 pods: every pair reachable, across nodes through BIRD\'s routes', async () => {
    const rest = await addPods(rec, nodes.flatMap((node, i) => ['p1', 'p2', 'p3'].filter((p) => i > 0 || p !== 'p1').map((name) => ({ node, name }))));
    for (const r of rest) assert.equal(r.add.code, 0, `${r.pod.name}: ${r.add.stdout}${r.add.stderr}`);
    const m = await pingAll(rec.state);
    assert.equal(m.pods.length, 9);
    assert.deepEqual(m.failures, [], renderMatrix(m));
    const cli = spawnSync(process.execPath, [PLUGIN, 'lab', 'check', '--name', lab.name, '--dir', lab.dir], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(cli.status, 0, cli.stdout + cli.stderr);
    assert.match(cli.stdout, /all 72 pairs reachable/);
  });

  it('`testcni status` shows the BGP sessions; the agent exports them as metrics', async () => {
    const n = nodes[0]!;
    const conf = join(n.confDir, '10-testcni.conflist');
    const st = spawnSync(findTool('nsenter'), [`--net=${netnsPath(n.netns)}`, '--', process.execPath, PLUGIN, 'status', '--config', conf], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(st.status, 0, st.stderr);
    assert.match(st.stdout, /DAEMON bird {2}running \(pid \d+/);
    assert.match(st.stdout, /2 of 2 session\(s\) established/);
    for (const o of nodes.slice(1)) assert.match(st.stdout, new RegExp(`node_${o.underlayIp.replace(/\./g, '_')} +${o.underlayIp.replace(/\./g, '\\.')} +64512 +Established +\\S+ +1 +1`));
    const lab_ = spawnSync(process.execPath, [PLUGIN, 'lab', 'status', '--json', '--name', lab.name, '--dir', lab.dir], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(lab_.status, 0, lab_.stderr);
    const report = JSON.parse(lab_.stdout) as { modeOptions: Record<string, string>; nodes: { name: string; daemons: unknown[]; routes: { dst: string }[] }[] };
    assert.deepEqual(report.modeOptions, { 'ipip-mode': 'never' });
    for (const node of report.nodes) {
      assert.deepEqual(node.daemons, [{ name: 'bird', running: true, sessions: { established: 2, total: 2 } }], node.name);
      assert.equal(node.routes.length, 2, `${node.name}: the routes BIRD installed, as its agent reports them`);
    }
    const script = `fetch('http://${n.underlayIp}:${METRICS_PORT}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`;
    const m = spawnSync(findTool('nsenter'), [`--net=${netnsPath(n.netns)}`, '--', process.execPath, '-e', script], { encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
    assert.match(m.stdout, /^testcni_daemon_up\{daemon="bird"\} 1$/m);
    for (const o of nodes.slice(1)) {
      const labels = `daemon="bird",session="node_${o.underlayIp.replace(/\./g, '_')}",peer="${o.underlayIp}"`;
      assert.match(m.stdout, new RegExp(`^testcni_peer_session_established\\{${labels},peer_as="64512"\\} 1$`, 'm'));
      assert.match(m.stdout, new RegExp(`^testcni_peer_session_routes\\{${labels},direction="imported"\\} 1$`, 'm'));
    }
  });

  it('BIRD killed: the agent starts it again and the node converges again', async () => {
    const n = nodes[0]!;
    const old = (await bird(n)).pid!;
    process.kill(old, 'SIGKILL');
    const t0 = Date.now();
    await waitFor(async () => {
      const b = await bird(n);
      return b.pid !== null && b.pid !== old && b.restarts === 1 && (b.sessions ?? []).length === 2 && b.sessions!.every((s) => s.established);
    }, 30_000, () => 'BIRD was not restarted with its sessions back');
    await waitFor(() => routesConverged(nodes), 30_000, () => 'routes did not converge');
    assert.ok(Date.now() - t0 < 30_000);
    const m = await pingAll(rec.state);
    assert.deepEqual(m.failures, [], renderMatrix(m));
  });

  it('a node leaving: the others withdraw its block (one reload each); joining again: one reload each, its block everywhere', async () => {
    const [n1, n2, n3] = nodes as [LabNode, LabNode, LabNode];
    const reloads = async () => Promise.all([n1, n2].map(async (n) => (await bird(n)).reloads));
    const before = await reloads();
    await stopAgent(rec, n3); // SIGTERM: BIRD stops for a graceful restart; n3's registration then lapses
    await waitFor(() => routesConverged([n1, n2]), 30_000, () => `n3's block still routed: ${JSON.stringify(birdRoutes(n1))}`);
    await waitFor(async () => (await bird(n1)).sessions!.length === 1 && (await bird(n2)).sessions!.length === 1, 10_000, () => 'n3 is still a peer');
    assert.deepEqual((await reloads()).map((r, i) => r - before[i]!), [1, 1], 'one reload per node for the leave');
    assert.equal(existsSync(join(n3.dir, 'bird.pid')), false, 'n3\'s BIRD stopped with its agent');

    const mid = await reloads();
    await startAgent(rec, n3);
    await waitAgentReady(n3);
    await waitNodesConverged(nodes, 30_000);
    assert.ok(routesConverged(nodes), 'every kernel routes every other block');
    assert.deepEqual((await reloads()).map((r, i) => r - mid[i]!), [1, 1], 'one reload per node for the join');
    const m = await pingAll(rec.state);
    assert.deepEqual(m.failures, [], renderMatrix(m));
  });

  it('gobgpd as an external peer of one node, through its agent: Established, gobgpd holds that node\'s block; the password stays private', async () => {
    const n1 = nodes[0]!;
    const u = rec.state.underlay;
    const password = 'Lab-md5-Secret';
    const pwFile = join(lab.dir, 'n1-peer.password');
    writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
    const gobgpAddr = u.gateway;
    // n1's agent gets a config of its own: the lab's, plus gobgpd as an external peer.
    const conf = join(lab.dir, 'n1-agent.json');
    writeFileSync(conf, JSON.stringify({ networkConfig: { bgp: { ipipMode: 'never', timers: LAB_TIMERS, externalPeers: [{ address: gobgpAddr, asn: 65001, passwordFile: pwFile }] } } }));
    const gobgpConf = join(lab.dir, 'gobgpd.toml');
    writeFileSync(gobgpConf, [
      '[global.config]', '  as = 65001', `  router-id = "${gobgpAddr}"`, `  local-address-list = ["${gobgpAddr}"]`,
      '[[neighbors]]', '  [neighbors.config]', `    neighbor-address = "${n1.underlayIp}"`, '    peer-as = 64512', `    auth-password = "${password}"`,
      '  [neighbors.timers.config]', '    connect-retry = 1', '    hold-time = 9', '    keepalive-interval = 3',
    ].join('\n') + '\n', { mode: 0o600 });
    const gobgpd = await startDaemon(
      [findTool('nsenter'), `--net=${netnsPath(u.netns)}`, '--', findTool('gobgpd'), '-f', gobgpConf, '--api-hosts', '127.0.0.1:50051', '--pprof-disable', '-p', '-l', 'info'],
      { logFile: join(lab.dir, 'gobgpd.log') },
    );
    try {
      await stopAgent(rec, n1);
      rec.update(() => {
        const i = n1.agentArgv.indexOf('--config');
        n1.agentArgv = i >= 0 ? [...n1.agentArgv.slice(0, i + 1), conf, ...n1.agentArgv.slice(i + 2)] : [...n1.agentArgv, '--config', conf];
      });
      await startAgent(rec, n1);
      await waitAgentReady(n1);
      const gobgp = (args: string[]) => spawnSync(findTool('nsenter'), [`--net=${netnsPath(u.netns)}`, '--', findTool('gobgp'), '-u', '127.0.0.1', '-p', '50051', ...args], { encoding: 'utf8' });
      await waitFor(async () => {
        const b = (await agentStatus(n1, 5000))?.daemons?.find((x) => x.name === 'bird');
        return b?.sessions?.find((s) => s.peer === gobgpAddr)?.established === true;
      }, 30_000, () => `no session with gobgpd: ${gobgp(['neighbor']).stdout}`);
      await waitFor(() => gobgp(['global', 'rib', '-a', 'ipv4', '-j']).stdout.includes(blocks.get(n1.name)!), 10_000, () => `gobgpd's RIB: ${gobgp(['global', 'rib']).stdout}`);
      const rib = JSON.parse(gobgp(['global', 'rib', '-a', 'ipv4', '-j']).stdout) as Record<string, { attrs: { type: number; nexthop?: string }[] }[]>;
      assert.deepEqual(Object.keys(rib), [blocks.get(n1.name)], 'gobgpd learns n1\'s block and nothing else (external peers get this node\'s blocks only)');
      const cfg = (await bird(n1)).config;
      assert.equal(statSync(cfg).mode & 0o777, 0o600, 'a bird.conf holding a password is private');
      assert.ok(!readFileSync(n1.logFile, 'utf8').includes(password), 'the agent never logs the password');
      // The mesh is untouched by the external peer.
      await waitNodesConverged(nodes, 30_000);
    } finally {
      await stopPid(gobgpd, 2000);
    }
  });
});
