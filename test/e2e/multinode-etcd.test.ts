// etcd stopped in the middle of a burst of ADDs, on the lab harness (2 nodes x 2 pods).
// "Stopped" is SIGSTOP: etcd keeps its sockets open and answers nothing, the harder case for
// clients (a dead process would refuse connections at once; a frozen one only times out).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { labSkipReason, testLab, attachmentTraces, etcdHandles } from '../helpers/lab.ts';
import type { UpReport } from '../../lab/up.ts';
import type { LabRecord, LabNode } from '../../lab/state.ts';
import { addPods, deletePod, runCni, type PodOutcome } from '../../lab/pods.ts';
import { agentStatus, waitAgentReady, waitNodesConverged } from '../../lab/agents.ts';
import { pingAll, pingFrom, renderMatrix } from '../../lab/check.ts';
import { waitUntil } from '../../lab/sys.ts';

const skip = labSkipReason();

function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

describe('multi-node lab: etcd stopped (SIGSTOP) in the middle of an ADD burst', { skip, timeout: 120_000 }, () => {
  const lab = testLab('me');
  let up: UpReport;
  let rec: LabRecord;
  let nodes: LabNode[];
  let etcdPid = 0;

  before(async () => {
    up = await lab.up(2, 2);
    rec = up.record;
    nodes = rec.state.nodes;
    etcdPid = rec.state.etcd!.pid!;
  });
  after(async () => {
    // never leave etcd frozen, whatever failed (down stops it anyway)
    try {
      if (etcdPid) process.kill(etcdPid, 'SIGCONT');
    } catch { /* gone */ }
    await lab.down();
  });

  it('ADDs fail with 11 and leave nothing behind, STATUS is 50, and everything works once etcd is back', async (t) => {
    const s = rec.state;
    const nodeOf = (name: string) => rec.node(name);
    const existing = [...s.pods];
    const registeredBefore = (await agentStatus(nodes[0]!))!.registeredAt;

    // Burst A: 8 ADDs; etcd is frozen as soon as the first of them is attached, while the others
    // are in flight. Burst B: 4 ADDs issued while it is frozen.
    const burstA = addPods(rec, Array.from({ length: 8 }, (_, i) => ({ node: nodes[i % 2]!, name: `a${i + 1}` })));
    await waitUntil(async () => rec.state.pods.some((p) => /-a\d+$/.test(p.name) && p.state !== 'creating'), 30_000, () => 'no ADD of burst A finished', 2);
    process.kill(etcdPid, 'SIGSTOP');
    const stoppedAt = Date.now();
    await waitUntil(async () => processState(etcdPid) === 'T', 2000, () => 'etcd did not stop');
    const burstB = await addPods(rec, Array.from({ length: 4 }, (_, i) => ({ node: nodes[i % 2]!, name: `b${i + 1}` })));
    const a = await burstA;
    t.diagnostic(`burst A (etcd frozen after its first ADD): ${a.filter((o) => o.add.code === 0).length} succeeded, ${a.filter((o) => o.add.code === 11).length} failed with 11; burst B answered ${Date.now() - stoppedAt} ms after the freeze`);

    for (const o of burstB) assert.equal(o.add.code, 11, `${o.pod.name} while etcd is stopped: ${o.add.stdout} ${o.add.stderr.slice(-400)}`);
    for (const o of a) assert.ok([0, 11].includes(o.add.code), `${o.pod.name}: ${o.add.stdout}`);
    const failed: PodOutcome[] = [...a.filter((o) => o.add.code !== 0), ...burstB];
    const succeeded = a.filter((o) => o.add.code === 0);

    // Nothing half-applied: no journal that is applied or applying, no host veth, no pod interface.
    for (const o of failed) {
      const traces = attachmentTraces(s, nodeOf(o.pod.node), o.pod.containerId, o.pod.netns);
      assert.ok(traces.journal === null || traces.journal === 'rolled-back', `${o.pod.name} journal ${traces.journal}`);
      assert.equal(traces.hostVeth, false, `${o.pod.name} has no host veth`);
      assert.equal(traces.podInterface, false, `${o.pod.name} has no pod interface`);
    }

    // STATUS (CNI 1.1) reports "not ready" (50) on every node while etcd is stopped.
    for (const n of nodes) {
      const st = await waitUntil(async () => {
        const r = await runCni(s, n, { command: 'STATUS' });
        return r.code === 50 ? r : null;
      }, 8000, () => `STATUS on ${n.name} never returned 50`);
      assert.equal(st.exit, 1);
    }
    // The data path does not depend on etcd: existing pods still reach each other across nodes.
    const [p1, p2] = [existing.find((p) => p.node === 'n1')!, existing.find((p) => p.node === 'n2')!];
    assert.ok(await pingFrom(p1.netns, p2.ip!), `${p1.name} -> ${p2.name} while etcd is stopped`);

    process.kill(etcdPid, 'SIGCONT');
    const resumed = Date.now();
    const statuses = new Map((await Promise.all(nodes.map((n) => waitAgentReady(n, 20_000)))).map((st) => [st.node, st]));
    await waitNodesConverged(nodes, 15_000);
    const registeredAfter = statuses.get(nodes[0]!.name)!.registeredAt;
    t.diagnostic(`agents ready and routes converged ${Date.now() - resumed} ms after etcd resumed (outage ${resumed - stoppedAt} ms; n1 ${registeredAfter === registeredBefore ? 'kept its registration' : 're-registered'})`);
    for (const n of nodes) assert.equal(statuses.get(n.name)!.block, up.statuses.get(n.name)!.block, `${n.name} keeps its block`);

    // STATUS is ready again, and the runtime's DEL of each failed ADD succeeds and frees what it held.
    for (const n of nodes) {
      const r = await runCni(s, n, { command: 'STATUS' });
      assert.equal(r.code, 0, r.stdout);
    }
    const leaked = Object.keys(etcdHandles(s)).filter((k) => failed.some((o) => k === `${o.pod.containerId}/eth0`));
    t.diagnostic(`handles of failed ADDs committed by etcd after it resumed (released by the runtime's DEL): ${leaked.length}`);
    const dels = await Promise.all(failed.map((o) => deletePod(rec, o.pod)));
    for (const d of dels) assert.equal(d?.code, 0, `DEL after a failed ADD: ${d?.stdout}`);
    const live = [...existing, ...succeeded.map((o) => o.pod)].map((p) => `${p.containerId}/eth0`).sort();
    assert.deepEqual(Object.keys(etcdHandles(s)).sort(), live, 'etcd holds the handles of the attached pods only');

    // New ADDs succeed, and every pod (old, from burst A, new) reaches every other.
    const fresh = await addPods(rec, nodes.map((n) => ({ node: n, name: 'c1' })));
    for (const o of fresh) assert.equal(o.add.code, 0, `${o.pod.name} after etcd is back: ${o.add.stdout}`);
    const ips = rec.state.pods.map((p) => p.ip);
    assert.equal(new Set(ips).size, ips.length, `distinct addresses: ${ips.join(' ')}`);
    const m = await pingAll(rec.state);
    assert.equal(m.pods.length, existing.length + succeeded.length + fresh.length);
    assert.deepEqual(m.failures, [], renderMatrix(m));
  });
});
