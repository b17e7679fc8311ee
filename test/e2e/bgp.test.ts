// BGP end to end between simulated nodes: node namespaces on an underlay bridge, a real BIRD in
// each, run by the agent's supervisor on configurations from the view model (ipipMode never:
// this kernel has no ipip device). Sessions, kernel routes from BIRD, a join (one reload per
// node), a leave, a killed BIRD, and a graceful restart.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { uniquePrefix } from '../helpers/netns.ts';
import { BgpLab, bgpSkipReason, waitFor, sleep, AGENT_PROTO, type SimNode } from '../helpers/bgp.ts';
import type { BgpSession } from '../../agent/bird/protocols.ts';

const skip = bgpSkipReason();

const registry = (nodes: SimNode[]) => nodes.map((n) => ({ name: n.name, underlayIp: n.underlayIp, blocks: n.blocks }));

describe('BGP between simulated nodes (real BIRD, ipipMode never)', { skip, timeout: 150_000 }, () => {
  let lab: BgpLab;
  let n: SimNode[] = [];
  const sessions = new Map<string, BgpSession[]>();

  /** "block via underlay dev eth0" for every other member: what the node's kernel should hold from BIRD. */
  const want = (node: SimNode, members: SimNode[]) =>
    members.filter((o) => o !== node).map((o) => `${o.block} via ${o.underlayIp} dev eth0`).sort();
  const have = (node: SimNode) => lab.routes(node).map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`).sort();

  /** Waits until every member has an Established session with every other member and their routes. */
  async function converged(members: SimNode[], timeoutMs = 20_000): Promise<void> {
    await waitFor(
      async () => {
        for (const node of members) {
          const s = await node.sup.birdc.bgpSessions().catch(() => []);
          sessions.set(node.name, s);
          const peers = members.filter((o) => o !== node).map((o) => o.underlayIp);
          if (!peers.every((p) => s.some((x) => x.peer === p && x.established))) return false;
          if (JSON.stringify(have(node)) !== JSON.stringify(want(node, members))) return false;
        }
        return true;
      },
      timeoutMs,
      () => members.map((m) => `${m.name}: routes ${JSON.stringify(have(m))}, sessions ${JSON.stringify((sessions.get(m.name) ?? []).map((x) => [x.peer, x.state]))}`).join('; '),
    );
  }

  before(() => {
    lab = new BgpLab(uniquePrefix('bg'));
    n = [1, 2, 3].map((i) => lab.addNode(i));
  });
  after(() => lab?.close());

  it('3 nodes: every session is Established and each kernel holds the other blocks, from BIRD', async () => {
    const reg = registry(n);
    for (const node of n) {
      assert.equal(await lab.configure(node, reg), 'written');
      await node.sup.start();
    }
    await converged(n);
    for (const node of n) {
      assert.deepEqual(have(node), want(node, n), `BIRD's routes in ${node.name}`);
      // The node's own block stays the agent's blackhole: BIRD announces it, never installs it.
      assert.deepEqual(lab.routes(node, AGENT_PROTO).map((r) => [r.dst, r.type]), [[node.block, 'blackhole']]);
      const s = await node.sup.birdc.bgpSessions(); // read after the routes: counts as of now
      assert.equal(s.length, 2);
      for (const x of s) {
        assert.equal(x.state, 'Established');
        assert.deepEqual([x.routes.imported, x.routes.exported], [1, 1], `${node.name} ${x.name}: one block in, one out`);
        assert.ok(x.sinceMs !== null && Math.abs(Date.now() - x.sinceMs) < 60_000, `since ${x.since}`);
      }
      assert.equal(node.sup.reloads, 0);
    }
  });

  it('a node joining: exactly one reload on each node, its block reaches every kernel, no session resets', async () => {
    const established = new Map<string, string>();
    for (const node of n) for (const s of await node.sup.birdc.bgpSessions()) established.set(`${node.name}/${s.name}`, s.since);
    n.push(lab.addNode(4));
    const reg = registry(n);
    for (const node of n.slice(0, 3)) assert.equal(await lab.configure(node, reg), 'reloaded');
    assert.equal(await lab.configure(n[3]!, reg), 'written');
    await n[3]!.sup.start();
    await converged(n);
    // The reload changed the filters of the existing sessions; none of them went down for it.
    for (const node of n.slice(0, 3)) {
      for (const s of sessions.get(node.name)!) {
        if (established.has(`${node.name}/${s.name}`)) assert.equal(s.since, established.get(`${node.name}/${s.name}`), `${node.name} ${s.name} was not reset`);
      }
    }
    // The same registry again changes nothing.
    for (const node of n) assert.equal(await lab.configure(node, reg), 'unchanged');
    assert.deepEqual(n.map((x) => x.sup.reloads), [1, 1, 1, 0]);
  });

  it('a node leaving: its BIRD stopped, the others withdraw its block; then gone from the registry', async () => {
    const leaving = n.pop()!;
    await leaving.sup.stop('leave');
    await waitFor(
      () => n.every((node) => !lab.routes(node).some((r) => r.dst === leaving.block)),
      10_000,
      () => `block ${leaving.block} still routed: ${n.map((x) => `${x.name} ${JSON.stringify(have(x))}`).join('; ')}`,
    );
    const reg = registry(n);
    for (const node of n) assert.equal(await lab.configure(node, reg), 'reloaded');
    await converged(n);
    for (const node of n) {
      const names = (await node.sup.birdc.bgpSessions()).map((s) => s.peer);
      assert.ok(!names.includes(leaving.underlayIp), `${node.name} has no session with ${leaving.name} any more: ${names}`);
    }
    assert.deepEqual(n.map((x) => x.sup.reloads), [2, 2, 2]);
  });

  it('BIRD killed: the supervisor starts it again and the routes converge again', async () => {
    const victim = n[0]!;
    const old = victim.sup.pid!;
    process.kill(old, 'SIGKILL');
    await waitFor(() => victim.sup.restarts === 1 && victim.sup.pid !== null && victim.sup.pid !== old, 10_000, () => `not restarted: ${JSON.stringify(victim.sup.status())}`);
    await converged(n);
    assert.ok(victim.log.lines.some((l) => l.includes('bird exited; restarting') && l.includes('SIGKILL')), victim.log.lines.join('\n'));
  });

  it('a graceful restart (agent restart): the peers keep the routes while BIRD is down', async () => {
    const node = n[1]!;
    await node.sup.stop('restart');
    assert.equal(node.sup.pid, null);
    await sleep(500); // well past the peers noticing the closed sessions
    for (const other of n.filter((o) => o !== node)) {
      assert.ok(lab.routes(other).some((r) => r.dst === node.block), `${other.name} keeps ${node.block}: ${JSON.stringify(have(other))}`);
    }
    await node.sup.start({ recovery: true });
    await converged(n);
  });
});
