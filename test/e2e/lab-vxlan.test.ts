// vxlan on the lab (lab/): 3 nodes on the underlay bridge, a real etcd, one agent per node (its
// node plan: device, maps, programs, the remote map from the registry), 4 pods per node attached
// by the built plugin. All pairs reach each other; pods reach their own node and the others; the
// underlay carries pod traffic only as VXLAN with the configured VNI; status and metrics show the
// programs and the maps' fill; a node that leaves disappears from the others' maps; `lab down`
// leaves no pins.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { PLUGIN, inNetns } from '../helpers/netns.ts';
import { labSkipReason, testLab } from '../helpers/lab.ts';
import { bpfSkipReason, ensureBpffs, startInNetns, readPcap, parseFrame, vxlanOf, BPFFS } from '../helpers/bpf.ts';
import type { LabRecord, LabNode } from '../../lab/state.ts';
import { pingAll, pingFrom, renderMatrix } from '../../lab/check.ts';
import { addPods } from '../../lab/pods.ts';
import { stopAgent, agentStatus, METRICS_PORT } from '../../lab/agents.ts';
import { waitUntil, netnsPath } from '../../lab/sys.ts';
import { parseDump, decodeRemote } from '../../bpf/maps.ts';

const skip = labSkipReason() ?? bpfSkipReason(['tcpdump', 'ethtool', 'mv', 'mkdir', 'rm']) ?? undefined;
const VNI = 13190;
const PORT = 8472;

describe('multi-node vxlan lab: 3 nodes x 4 pods, eBPF dataplane, VXLAN between nodes', { skip, timeout: 180_000 }, () => {
  const lab = testLab('xl', 'vxlan');
  let rec: LabRecord;
  let nodes: LabNode[];
  let unmount = () => {};
  const pinRoot = () => join(BPFFS, 'testcni', lab.name);
  const remoteOf = (n: LabNode) => {
    const dir = join(pinRoot(), `netns-${statSync(netnsPath(n.netns)).ino}`, 'maps', 'testcni_remote');
    return parseDump(JSON.parse(inNetns(n.netns, ['bpftool', '-j', 'map', 'dump', 'pinned', dir]).stdout)).map(decodeRemote).map((r) => r.cidr).sort();
  };

  before(async () => {
    unmount = ensureBpffs();
    rec = (await lab.up(3, 0, { metrics: true })).record;
    nodes = rec.state.nodes;
  });
  after(async () => {
    await lab.down();
    assert.ok(!existsSync(pinRoot()), `lab down leaves no pins (${pinRoot()})`);
    unmount();
  });

  it('each node\'s remote map holds the other nodes: their blocks and addresses, nothing else', async () => {
    const st = await Promise.all(nodes.map((n) => agentStatus(n)));
    for (const [i, n] of nodes.entries()) {
      const others = st.filter((_, j) => j !== i).flatMap((o) => [o!.block!, `${o!.underlayIp}/32`]).sort();
      assert.deepEqual(remoteOf(n), others, n.name);
    }
  });

  it('the first pod answers its own node and another node right after its ADD', async () => {
    const [first] = await addPods(rec, [{ node: nodes[0]!, name: 'p1' }]);
    assert.equal(first!.add.code, 0, first!.add.stdout + first!.add.stderr);
    const ip = first!.pod.ip!;
    assert.equal(await pingFrom(nodes[0]!.netns, ip, 1), true, `n1 -> ${ip}: one echo, no retry`);
    assert.equal(await pingFrom(nodes[1]!.netns, ip, 1), true, `n2 -> ${ip}: one echo, no retry`);
  });

  it('3 x 4 pods: every pair reachable (lab check)', async () => {
    const rest = await addPods(rec, nodes.flatMap((node, i) => ['p1', 'p2', 'p3', 'p4'].filter((p) => i > 0 || p !== 'p1').map((name) => ({ node, name }))));
    for (const r of rest) assert.equal(r.add.code, 0, `${r.pod.name}: ${r.add.stdout}${r.add.stderr}`);
    assert.equal(rec.state.pods.length, 12);
    const m = await pingAll(rec.state);
    assert.equal(m.failures.length, 0, renderMatrix(m));
    assert.equal(m.pairs, 132);
  });

  it('pods reach their own node and the other nodes; the nodes reach every pod', async () => {
    for (const p of rec.state.pods) {
      const own = nodes.find((n) => n.name === p.node)!;
      const other = nodes.find((n) => n.name !== p.node)!;
      assert.ok(await pingFrom(p.netns, own.underlayIp), `${p.name} -> its node ${own.name}`);
      assert.ok(await pingFrom(p.netns, other.underlayIp), `${p.name} -> ${other.name}`);
      assert.ok(await pingFrom(own.netns, p.ip!), `${own.name} -> ${p.name}`);
      assert.ok(await pingFrom(other.netns, p.ip!), `${other.name} -> ${p.name}`);
    }
  });

  it('the underlay carries cross-node pod traffic only as VXLAN with the configured VNI', async () => {
    const file = join(tmpdir(), `${lab.name}-underlay.pcap`);
    // Everything on the underlay bridge but the agents' etcd sessions.
    const capture = await startInNetns(rec.state.underlay.netns, ['tcpdump', '-i', rec.state.underlay.bridge, '-n', '--immediate-mode', '-U', '-s', '256', '-w', file, 'not', 'tcp', 'port', '2379'], /listening on/);
    const pods = rec.state.pods;
    const flows = nodes.flatMap((n) => {
      const mine = pods.filter((p) => p.node === n.name);
      const theirs = pods.filter((p) => p.node !== n.name);
      return [[mine[0]!.netns, theirs[0]!.ip!], [mine[1]!.netns, theirs[5]!.ip!], [n.netns, theirs[2]!.ip!], [mine[2]!.netns, nodes.find((x) => x.name !== n.name)!.underlayIp]];
    });
    let replies = 0;
    try {
      for (const [from, to] of flows) {
        const r = inNetns(from!, ['ping', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '1', to!], { allowFail: true });
        assert.equal(r.code, 0, `${from} -> ${to}`);
        replies += Number(r.stdout.match(/(\d+) received/)?.[1] ?? 0);
      }
    } catch (e) {
      rmSync(file, { force: true });
      throw e;
    } finally {
      await capture.stop();
    }
    // tcpdump writes as its own user, hence the shared temp dir; the file goes once read
    let frames: Buffer[];
    try {
      frames = readPcap(file);
    } finally {
      rmSync(file, { force: true });
    }
    const podIps = new Set(pods.map((p) => p.ip));
    const underlay = new Set([...nodes.map((n) => n.underlayIp), rec.state.underlay.gateway]);
    let echoes = 0;
    for (const frame of frames) {
      const f = parseFrame(frame);
      if (f.ethertype === 0x0806 || f.ethertype === 0x86dd) continue; // ARP and IPv6 neighbour traffic of the underlay itself
      const vx = vxlanOf(frame, PORT);
      assert.ok(vx, `not VXLAN on the underlay: ${JSON.stringify({ ...f, ip: f.ip && { ...f.ip, body: undefined } })}`);
      assert.equal(vx.vni, VNI);
      assert.ok(underlay.has(vx.outer.src) && underlay.has(vx.outer.dst), `outer ${vx.outer.src} -> ${vx.outer.dst}`);
      assert.ok(vx.inner.ip && (podIps.has(vx.inner.ip.src) || podIps.has(vx.inner.ip.dst)), `inner ${vx.inner.ip?.src} -> ${vx.inner.ip?.dst}`);
      if (vx.inner.ip.proto === 1) echoes++;
    }
    assert.ok(echoes >= 2 * replies && replies >= 2 * flows.length, `${echoes} echoes in VXLAN for ${replies} replies`);
  });

  it('status and metrics: the programs attached on each node and the fill of each map', async () => {
    const n1 = nodes[0]!;
    const conf = join(n1.confDir, readdirSync(n1.confDir)[0]!);
    const status = inNetns(n1.netns, [process.execPath, PLUGIN, 'status', '--config', conf]).stdout;
    assert.match(status, /node +dataplane as it should be/);
    assert.match(status, /testcni\.vxlan +ingress +tcni_from_vxlan +\d+ +this build/);
    assert.equal(status.match(/ingress +tcni_from_pod +\d+ +this build/g)?.length, 4, status);
    assert.match(status, /testcni_eps +4 +16384 /);
    assert.match(status, /testcni_remote +4 +8192 /);
    const fetch = `fetch('http://${n1.underlayIp}:${METRICS_PORT}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`;
    const metrics = inNetns(n1.netns, [process.execPath, '-e', fetch]).stdout;
    assert.match(metrics, /^testcni_bpf_map_entries\{map="testcni_eps"\} 4$/m);
    assert.match(metrics, /^testcni_bpf_map_entries\{map="testcni_remote"\} 4$/m);
    assert.match(metrics, /^testcni_bpf_map_capacity\{map="testcni_eps"\} 16384$/m);
    assert.match(metrics, /^testcni_bpf_programs_attached\{program="tcni_from_pod"\} 4$/m);
    assert.match(metrics, /^testcni_bpf_programs_attached\{program="tcni_from_vxlan"\} 1$/m);
  });

  it('a node that leaves disappears from the other nodes\' maps; its pods are no longer reached', async () => {
    const [n1, n2, n3] = nodes as [LabNode, LabNode, LabNode];
    const gone = (await agentStatus(n3))!;
    await stopAgent(rec, n3);
    // Its registration lapses with its lease (3 s in the lab), its prefixes go after the grace (3 s).
    await waitUntil(async () => [n1, n2].every((n) => !remoteOf(n).includes(gone.block!)), 30_000,
      () => `n3's prefixes still in ${[n1, n2].map((n) => `${n.name}: ${remoteOf(n).join(' ')}`).join('; ')}`, 250);
    for (const n of [n1, n2]) assert.ok(!remoteOf(n).includes(`${gone.underlayIp}/32`), `${n.name}: n3's address gone too`);
    const n3pod = rec.state.pods.find((p) => p.node === 'n3')!;
    const n1pod = rec.state.pods.find((p) => p.node === 'n1')!;
    assert.equal(await pingFrom(n1pod.netns, n3pod.ip!, 1), false, 'n1 pod -> n3 pod');
    const n2pod = rec.state.pods.find((p) => p.node === 'n2')!;
    assert.ok(await pingFrom(n1pod.netns, n2pod.ip!), 'n1 pod -> n2 pod still');
  });
});
