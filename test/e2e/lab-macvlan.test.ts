// macvlan on the lab (lab/): 3 nodes on the underlay bridge, a real etcd, one agent per node
// serving one shared range of the underlay, 3 pods per node attached by the built plugin. The
// pods are on the underlay itself: they reach each other and the other nodes, not their own
// node (a macvlan property); `lab down` leaves nothing behind.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PLUGIN, sh } from '../helpers/netns.ts';
import { labSkipReason, testLab } from '../helpers/lab.ts';
import type { LabRecord, LabNode } from '../../lab/state.ts';
import { pingAll, pingFrom, renderMatrix } from '../../lab/check.ts';
import { addPods } from '../../lab/pods.ts';
import { labStatus } from '../../lab/status.ts';
import { UNDERLAY_POD_RANGE } from '../../lab/topology.ts';
import { validateUp } from '../../lab/up.ts';
import { parseIp } from '../../lib/ipv4.ts';

const skip = labSkipReason();

function inPodRange(ip: string): boolean {
  const n = parseIp(ip)!;
  return n >= parseIp(UNDERLAY_POD_RANGE.start)! && n <= parseIp(UNDERLAY_POD_RANGE.end)!;
}

function alive(pid: number | null): boolean {
  if (pid === null) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('multi-node macvlan lab: 3 nodes x 3 pods on the underlay', { skip, timeout: 120_000 }, () => {
  const lab = testLab('ml', 'macvlan');
  let rec: LabRecord;
  let nodes: LabNode[];

  before(async () => {
    rec = (await lab.up(3, 0)).record;
    nodes = rec.state.nodes;
  });
  after(() => lab.down());

  it('the first pod answers another node\'s first ping right after its ADD', async () => {
    const [first] = await addPods(rec, [{ node: nodes[0]!, name: 'p1' }]);
    assert.equal(first!.add.code, 0, first!.add.stdout + first!.add.stderr);
    const ip = first!.pod.ip!;
    assert.ok(inPodRange(ip), `${ip} from the shared range`);
    assert.equal(await pingFrom(nodes[1]!.netns, ip, 1), true, `n2 -> ${ip}: one echo, no retry`);
  });

  it('3 x 3 pods: distinct addresses from one shared range, every pair reachable across nodes', async () => {
    const rest = await addPods(rec, nodes.flatMap((node, i) => ['p1', 'p2', 'p3'].filter((p) => i > 0 || p !== 'p1').map((name) => ({ node, name }))));
    for (const r of rest) assert.equal(r.add.code, 0, `${r.pod.name}: ${r.add.stdout}${r.add.stderr}`);
    const pods = rec.state.pods;
    assert.equal(pods.length, 9);
    assert.equal(new Set(pods.map((p) => p.ip)).size, 9, `addresses ${pods.map((p) => p.ip)}`);
    for (const p of pods) assert.ok(p.state === 'ready' && inPodRange(p.ip!), `${p.name} ${p.ip}`);
    const m = await pingAll(rec.state);
    assert.equal(m.pairs, 72);
    assert.deepEqual(m.failures, [], renderMatrix(m));
  });

  it('a pod reaches the other nodes but not its own (macvlan: a child and its master do not hear each other)', async () => {
    for (const [i, node] of nodes.entries()) {
      const pod = rec.state.pods.find((p) => p.node === node.name)!;
      const other = nodes[(i + 1) % nodes.length]!;
      assert.equal(await pingFrom(pod.netns, other.underlayIp, 1), true, `${pod.name} -> ${other.name} ${other.underlayIp}`);
      assert.equal(await pingFrom(pod.netns, node.underlayIp, 1), false, `${pod.name} -> its own node ${node.underlayIp} is expected to fail`);
    }
  });

  it('status: every agent ready, no node routes (no node plan); `lab check` passes', async () => {
    const st = await labStatus(rec.state);
    assert.equal(st.mode, 'macvlan');
    for (const n of st.nodes) {
      assert.ok(n.agent.ready, `${n.name}: ${n.agent.reason}`);
      assert.deepEqual(n.routes, []);
    }
    const check = spawnSync(process.execPath, [PLUGIN, 'lab', 'check', '--name', lab.name, '--dir', lab.dir], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /all 72 pairs reachable/);
  });

  it('`lab down` leaves nothing: no namespace, process or file of the lab', async () => {
    const pids = [...nodes.map((n) => n.agentPid), rec.state.etcd!.pid];
    const netns = [...rec.state.netns];
    await lab.down();
    const left = sh(['ip', 'netns', 'list']).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => netns.includes(n) || n.startsWith(lab.name));
    assert.deepEqual(left, []);
    assert.deepEqual(pids.filter(alive), [], 'agents and etcd stopped');
    assert.equal(existsSync(lab.dir), false);
  });
});

describe('lab up refuses what the lab cannot carry', () => {
  const base = { name: 'tcvalid', dir: '/nonexistent/tcvalid', nodes: 3, pods: 3, binary: PLUGIN };
  it('ipvlan, naming why (no ipvlan device in this kernel)', () => {
    assert.throws(() => validateUp({ ...base, mode: 'ipvlan' }), /mode ipvlan cannot run in the lab here: needs a kernel with ipvlan/);
  });
  it('more macvlan pods than the underlay\'s pod range holds', () => {
    assert.throws(() => validateUp({ ...base, mode: 'macvlan', nodes: 3, pods: 43 }), /3 x 43 pods do not fit in mode macvlan's range 198\.18\.0\.128-198\.18\.0\.254/);
    assert.throws(() => validateUp({ ...base, mode: 'macvlan', nodes: 118, pods: 1 }), /--nodes must be 1\.\.117 in mode macvlan/);
  });
});
