// Multi-node host-gw end to end, on the lab harness (lab/): 3 node namespaces on an underlay
// bridge, a real etcd, one agent per node, 4 pods per node attached by the built plugin.
// Node routes are read straight from the kernel (`ip -j route show proto 151`).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { inNetns, PLUGIN } from '../helpers/netns.ts';
import { labSkipReason, testLab, etcdHandles } from '../helpers/lab.ts';
import type { UpReport } from '../../lab/up.ts';
import type { LabRecord, LabNode, LabPod } from '../../lab/state.ts';
import { pingAll, pingFrom, renderMatrix } from '../../lab/check.ts';
import { addPods, deletePod } from '../../lab/pods.ts';
import { agentRunning, agentStatus, startAgent, stopAgent, waitAgentReady, waitNodesConverged } from '../../lab/agents.ts';
import { runner, tools, waitUntil, sleep } from '../../lab/sys.ts';
import { parseCidr, parseIp, contains, formatIp } from '../../lib/ipv4.ts';
import type { AgentStatus } from '../../ipam/agent-protocol.ts';

const skip = labSkipReason();

/** The agents' routes in a node, as the kernel lists them. */
function kernelRoutes(node: LabNode): { dst: string; via: string }[] {
  const rows = JSON.parse(inNetns(node.netns, ['ip', '-j', 'route', 'show', 'proto', '151']).stdout || '[]') as { dst: string; gateway?: string }[];
  return rows.map((r) => ({ dst: r.dst, via: r.gateway ?? '' })).sort((a, b) => (a.dst < b.dst ? -1 : 1));
}

function inBlock(block: string, ip: string): boolean {
  return contains(parseCidr(block)!, parseIp(ip)!);
}

describe('multi-node host-gw lab: 3 nodes x 4 pods', { skip, timeout: 170_000 }, () => {
  const lab = testLab('mn');
  let up: UpReport;
  let rec: LabRecord;
  let nodes: LabNode[];
  const blocks = new Map<string, string>();
  const original = (): LabPod[] => rec.state.pods.filter((p) => /-p\d+$/.test(p.name));

  before(async () => {
    up = await lab.up(3, 4);
    rec = up.record;
    nodes = rec.state.nodes;
    for (const [name, st] of up.statuses) blocks.set(name, st.block!);
  });
  after(() => lab.down());

  it('gives every node its own block and every pod a distinct address from its node\'s block', () => {
    assert.equal(new Set(blocks.values()).size, 3, `blocks ${[...blocks.values()]}`);
    const pods = original();
    assert.equal(pods.length, 12);
    assert.equal(new Set(pods.map((p) => p.ip)).size, 12, `addresses ${pods.map((p) => p.ip)}`);
    for (const p of pods) {
      assert.equal(p.state, 'ready');
      assert.ok(inBlock(blocks.get(p.node)!, p.ip!), `${p.name} ${p.ip} is in ${blocks.get(p.node)}`);
    }
    // Each node routes to the two other blocks via their underlay addresses, and to nothing else.
    for (const n of nodes) {
      const want = nodes.filter((o) => o !== n).map((o) => ({ dst: blocks.get(o.name)!, via: o.underlayIp })).sort((a, b) => (a.dst < b.dst ? -1 : 1));
      assert.deepEqual(kernelRoutes(n), want, `routes of ${n.name}`);
    }
  });

  it('every pod reaches every other pod, across nodes (all pairs)', async () => {
    const m = await pingAll(rec.state);
    assert.equal(m.pods.length, 12);
    assert.equal(m.pairs, 132);
    assert.deepEqual(m.failures, [], renderMatrix(m));
    // The oracle can fail: an address of n3's block that no pod holds does not answer.
    const unused = formatIp(parseCidr(blocks.get('n3')!)!.base + 250);
    assert.equal(await pingFrom(original()[0]!.netns, unused, 1), false, `${unused} must not answer`);
  });

  it('`lab status --json` and `lab check` report this lab', () => {
    const cli = (args: string[]) => spawnSync(process.execPath, [PLUGIN, 'lab', ...args, '--name', lab.name, '--dir', lab.dir], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    const st = cli(['status', '--json']);
    assert.equal(st.status, 0, st.stderr);
    const report = JSON.parse(st.stdout) as { pods: { name: string; ip: string; node: string; netns: string; containerId: string }[]; nodes: { name: string; block: string; agent: { ready: boolean } }[] };
    assert.deepEqual(
      report.pods.map((p) => [p.name, p.ip, p.node, p.netns, p.containerId]).sort(),
      original().map((p) => [p.name, p.ip, p.node, p.netns, p.containerId]).sort(),
    );
    assert.deepEqual(report.nodes.map((n) => [n.name, n.block, n.agent.ready]), nodes.map((n) => [n.name, blocks.get(n.name), true]));
    const check = cli(['check']);
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /all 132 pairs reachable/);
  });

  it('a node that leaves loses its routes on the other nodes; rejoining adds them back', async (t) => {
    const [n1, n2, n3] = nodes as [LabNode, LabNode, LabNode];
    const b3 = blocks.get('n3')!;
    const toN3 = (n: LabNode) => kernelRoutes(n).filter((r) => r.dst === b3);
    for (const n of [n1, n2]) assert.deepEqual(toN3(n), [{ dst: b3, via: n3.underlayIp }], `${n.name} routes to n3 before`);
    const n3Routes = kernelRoutes(n3);

    const killed = Date.now();
    await stopAgent(rec, n3, 'SIGKILL'); // a crash: nothing deregisters, only the lease expires
    assert.equal(agentRunning(n3), false);
    await waitUntil(async () => toN3(n1).length === 0 && toN3(n2).length === 0, 15_000, () => `routes to ${b3} still on n1/n2: ${JSON.stringify([toN3(n1), toN3(n2)])}`, 50);
    const gone = Date.now() - killed;
    t.diagnostic(`routes to the departed node removed ${gone} ms after the kill (lease TTL 3 s)`);
    assert.ok(gone >= 1000, `removed after ${gone} ms: only the lease's expiry should have removed them`);
    // Only the departed node's routes went; n3's own kernel keeps what its agent had set.
    assert.deepEqual(kernelRoutes(n1), [{ dst: blocks.get('n2')!, via: n2.underlayIp }]);
    assert.deepEqual(kernelRoutes(n2), [{ dst: blocks.get('n1')!, via: n1.underlayIp }]);
    assert.deepEqual(kernelRoutes(n3), n3Routes);
    const peers = (await agentStatus(n1))!.nodes.map((n) => n.name);
    assert.deepEqual(peers, ['n1', 'n2'], 'n1 no longer lists n3');

    const rejoin = Date.now();
    await startAgent(rec, n3);
    const st = await waitAgentReady(n3);
    assert.equal(st.block, b3, 'the node keeps its block across the rejoin');
    await waitNodesConverged(nodes, 10_000);
    t.diagnostic(`n3 ready and every node converged ${Date.now() - rejoin} ms after its agent started again`);
    for (const n of [n1, n2]) assert.deepEqual(toN3(n), [{ dst: b3, via: n3.underlayIp }], `${n.name} routes to n3 again`);
    const [a, c] = [original().find((p) => p.node === 'n1')!, original().find((p) => p.node === 'n3')!];
    assert.ok(await pingFrom(a.netns, c.ip!), `${a.name} -> ${c.name} after the rejoin`);
    assert.ok(await pingFrom(c.netns, a.ip!), `${c.name} -> ${a.name} after the rejoin`);
  });

  it('32 concurrent ADDs spread across the nodes get distinct addresses from their nodes\' blocks', async (t) => {
    const handlesBefore = etcdHandles(rec.state);
    const specs = Array.from({ length: 32 }, (_, i) => ({ node: nodes[i % 3]!, name: `b${i + 1}` }));
    const started = performance.now();
    const outcomes = await addPods(rec, specs);
    t.diagnostic(`32 concurrent ADDs over 3 nodes in ${Math.round(performance.now() - started)} ms`);
    for (const o of outcomes) assert.equal(o.add.code, 0, `${o.pod.name}: ${o.add.stdout} ${o.add.stderr.slice(-800)}`);
    const ips = outcomes.map((o) => o.pod.ip!);
    assert.equal(new Set(ips).size, 32, `distinct: ${ips.join(' ')}`);
    const taken = new Set(original().map((p) => p.ip));
    for (const o of outcomes) {
      assert.ok(inBlock(blocks.get(o.pod.node)!, o.pod.ip!), `${o.pod.name} ${o.pod.ip} in ${blocks.get(o.pod.node)}`);
      assert.ok(!taken.has(o.pod.ip), `${o.pod.ip} was already an existing pod's`);
    }
    // One burst pod per node answers from another node's pod.
    for (const n of nodes) {
      const target = outcomes.find((o) => o.pod.node === n.name)!.pod;
      const from = original().find((p) => p.node !== n.name)!;
      assert.ok(await pingFrom(from.netns, target.ip!), `${from.name} -> ${target.name} ${target.ip}`);
    }
    // DEL releases every one of them: etcd holds exactly the handles it held before.
    const dels = await Promise.all(outcomes.map((o) => deletePod(rec, o.pod)));
    for (const d of dels) assert.equal(d?.code, 0, `${d?.stdout} ${d?.stderr.slice(-400)}`);
    assert.deepEqual(etcdHandles(rec.state), handlesBefore);
  });

  it('an agent restart keeps existing pods reachable and keeps the node\'s block', async (t) => {
    const n2 = rec.node('n2');
    const beforeStatus = (await agentStatus(n2))!;
    const from = original().find((p) => p.node === 'n1')!;
    const to = original().find((p) => p.node === 'n2')!;

    // Ping across the restart: one echo every ~100 ms until the agent is ready again.
    let restarting = true;
    const probes: boolean[] = [];
    const pinger = (async () => {
      while (restarting) {
        const r = await runner.run([tools.nsenter, `--net=/var/run/netns/${from.netns}`, '--', tools.ping, '-n', '-q', '-c', '1', '-W', '1', to.ip!]);
        probes.push(r.exitCode === 0);
        await sleep(100);
      }
    })();
    let after: AgentStatus;
    try {
      await sleep(300);
      await stopAgent(rec, n2, 'SIGTERM');
      assert.equal(await agentStatus(n2), null, 'the stopped agent does not answer');
      await sleep(500);
      await startAgent(rec, n2);
      after = await waitAgentReady(n2);
      await sleep(300);
    } finally {
      restarting = false;
      await pinger;
    }
    t.diagnostic(`${probes.length} pings during the restart, ${probes.filter((x) => !x).length} lost`);
    assert.ok(probes.length >= 5, `only ${probes.length} pings ran during the restart`);
    assert.deepEqual(probes.filter((x) => !x).length, 0, `lost pings during the restart: ${probes.map((x) => (x ? '.' : 'X')).join('')}`);

    assert.equal(after.block, beforeStatus.block, 'same block after the restart');
    assert.deepEqual(after.ipam, beforeStatus.ipam, 'the reservations are loaded back');
    await waitNodesConverged(nodes, 10_000);
    assert.ok(await pingFrom(to.netns, from.ip!), `${to.name} -> ${from.name} after the restart`);

    // A pod added after the restart gets an address nobody holds.
    const [fresh] = await addPods(rec, [{ node: n2, name: 'r1' }]);
    assert.equal(fresh!.add.code, 0, fresh!.add.stdout);
    assert.ok(!original().some((p) => p.ip === fresh!.pod.ip), `${fresh!.pod.ip} is new`);
    assert.ok(await pingFrom(from.netns, fresh!.pod.ip!), `${from.name} -> ${fresh!.pod.name}`);
    assert.equal((await deletePod(rec, fresh!.pod))?.code, 0);
  });
});
