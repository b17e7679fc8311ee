// testcni under a real runtime: Debian's containerd (CRI, runc), started by the test inside a
// node network namespace, asked for pod sandboxes over CRI as kubelet would, with a conflist at
// cniVersion 1.0.0 (containerd 1.6's libcni knows no result version above it). One run per mode
// this kernel can carry (mode-nodes.ts): host-gw, macvlan (ipvlan where the kernel has it) and
// vxlan (its tc programs and pins in bpffs) with file IPAM on a node wired to a node network; ipip (ipipMode never: this kernel has no IPIP
// device) on the first node of a 2-node lab, with cluster IPAM through its agent and BIRD on both
// nodes. A new pod answers at once from where its mode says (host-gw, vxlan: the node and,
// through it, another host; macvlan and ipvlan: another host on the node network, never their own node; ipip:
// its node and the other node, over the route BIRD learned), and StopPodSandbox +
// RemovePodSandbox leave the node as before and its address free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { uniquePrefix, inNetns, sh } from '../helpers/netns.ts';
import { Scope, linkNames, readJournal } from '../helpers/e2e.ts';
import { Containerd, containerdSkipReason } from '../helpers/containerd.ts';
import { buildPauseImage, type PauseImage } from '../helpers/oci-image.ts';
import { toConflist } from '../helpers/conflist.ts';
import { modeNode, labModeNode, modeKernelSkipReason, modeNodeState, type ModeNode } from '../helpers/mode-nodes.ts';
import { labSkipReason } from '../helpers/lab.ts';
import { bgpSkipReason } from '../helpers/bgp.ts';

type MakeNode = (scope: Scope, tag: string, t: { after(fn: () => Promise<void>): void }) => Promise<ModeNode>;
const wired = (mode: string): MakeNode => async (scope, tag) => modeNode(scope, mode, tag);

/** The modes this kernel can carry pods of (ipvlan skips itself where the kernel has none). */
const RUNTIME_MODES: { mode: string; node: MakeNode; skip: () => string | null }[] = [
  { mode: 'host-gw', node: wired('host-gw'), skip: () => null },
  { mode: 'macvlan', node: wired('macvlan'), skip: () => null },
  { mode: 'ipvlan', node: wired('ipvlan'), skip: () => modeKernelSkipReason('ipvlan') },
  { mode: 'vxlan', node: wired('vxlan'), skip: () => modeKernelSkipReason('vxlan') },
  { mode: 'ipip', node: (_scope, _tag, t) => labModeNode('ipip', { 'ipip-mode': 'never' }, t), skip: () => labSkipReason() ?? bgpSkipReason() ?? null },
];
const PODS = 4;
/** Fresh nodes whose first pod must answer at once: host-gw's is the issue 6 §2 regression. */
const FRESH_NODES: Record<string, number> = { 'host-gw': 3 };

/** One ICMP echo from `ns`, one second to answer: "reachable at once". */
function pingsOnce(ns: string, ip: string): boolean {
  return inNetns(ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', ip], { allowFail: true }).code === 0;
}

function inPod(pid: number, argv: string[], allowFail = false) {
  return sh(['nsenter', `--net=/proc/${pid}/ns/net`, '--', ...argv], { allowFail });
}

/** testcni's log lines for one container and verb (the log file is in the node's dir). */
function verbsDone(logFile: string, containerId: string, verb: string): number {
  if (!existsSync(logFile)) return 0;
  return readFileSync(logFile, 'utf8').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { msg?: string; containerId?: string })
    .filter((l) => l.containerId === containerId && l.msg === `${verb} done`).length;
}

async function removePod(ctrd: Containerd, id: string): Promise<void> {
  await ctrd.cri.stopPodSandbox(id);
  await ctrd.cri.removePodSandbox(id);
}

async function startRuntime(prefix: string, m: ModeNode, image: PauseImage, extra: Record<string, unknown> = {}): Promise<Containerd> {
  return Containerd.start({ prefix, nodeNs: m.node.name, conflist: toConflist(m.config({ cniVersion: '1.0.0', ...extra })), image });
}

for (const { mode, node: makeNode, skip: modeSkip } of RUNTIME_MODES) {
  const skip = containerdSkipReason() ?? modeSkip() ?? undefined;

  test(`containerd (CRI v1) runs pod sandboxes on testcni: ${mode}${mode === 'ipip' ? ' (ipipMode never, lab)' : ''}`, { skip, timeout: 120_000 }, async (t) => {
    const scope = new Scope(t, uniquePrefix('cd'));
    const m = await makeNode(scope, '', t);
    const { node } = m;
    const imageDir = mkdtempSync(join(tmpdir(), `${scope.prefix}-img-`));
    scope.defer(() => rmSync(imageDir, { recursive: true, force: true }));
    const logFile = join(node.dir, 'testcni.log');
    const image = buildPauseImage(imageDir);
    const ctrd = await startRuntime(scope.prefix, m, image, { logFile });
    scope.defer(() => ctrd.destroy());
    let podSeq = 0;
    const runPod = () => {
      const n = podSeq++;
      return ctrd.runPod({ name: `pod${n}`, uid: `${scope.prefix}-uid-${n}`, namespace: 'testcni-e2e' });
    };

    await t.test('containerd serves the CRI runtime.v1 API', async () => {
      const v = await ctrd.cri.version();
      assert.equal(v.runtime_name, 'containerd');
      assert.equal(v.runtime_api_version, 'v1');
      t.diagnostic(`containerd ${v.runtime_version}, CRI ${v.runtime_api_version}`);
    });

    // Issue 6 §2: on a fresh host-gw node the bridge and its first port come up together and the
    // kernel makes the bridge operational asynchronously, up to a second later, so the node's
    // first ARP for the first pod was lost (0 of 3 fresh nodes answered here before ADD waited
    // for its links). Each round is a new node netns with a new containerd: removing the bridge of
    // a used node does not reproduce it. The other modes: their first pod, from where they say.
    const fresh = FRESH_NODES[mode] ?? 1;
    await t.test(`the first pod on a fresh node answers ping -c1 -W1 right after RunPodSandbox (${fresh} node${fresh > 1 ? 's' : ''})`, async () => {
      const answered: boolean[] = [];
      const lateMs: number[] = [];
      for (let round = 0; round < fresh; round++) {
        const f = await makeNode(scope, `f${round}`, t);
        const runtime = await startRuntime(`${scope.prefix}f${round}`, f, image);
        try {
          const id = await runtime.runPod({ name: 'first', uid: `${scope.prefix}-first-${round}`, namespace: 'testcni-e2e' });
          const { ip } = await runtime.status(id);
          const t0 = Date.now();
          answered.push(pingsOnce(f.reachFrom[0]!, ip));
          // how late, when it was: for the record, not asserted
          if (!answered.at(-1) && (pingsOnce(f.reachFrom[0]!, ip) || pingsOnce(f.reachFrom[0]!, ip))) lateMs.push(Date.now() - t0);
        } finally {
          runtime.destroy();
        }
      }
      const ok = answered.filter(Boolean).length;
      t.diagnostic(`first pod of a fresh node answered at once on ${ok} of ${fresh} nodes` +
        (lateMs.length ? `; the others answered a ping sent after ${lateMs.map((ms) => `${ms} ms`).join(', ')}` : ''));
      assert.equal(ok, fresh, `the first pod of a fresh node was unreachable right after RunPodSandbox on ${fresh - ok} of ${fresh} nodes`);
    });

    // A pod started and removed once makes the node-scope state ADD ensures and DEL keeps
    // (host-gw: the bridge, its address and route, forwarding): from here on the node must
    // return to this.
    const warm = await runPod();
    await removePod(ctrd, warm);
    const before = modeNodeState(m);
    const pods: { id: string; ip: string; pid: number }[] = [];

    await t.test(`RunPodSandbox: each of ${PODS} pods gets its address from testcni and is reached at once from ${m.reachFrom.length > 1 ? 'the node and another host' : 'another host on the node network'}`, async () => {
      const atOnce: boolean[] = [];
      for (let i = 0; i < PODS; i++) {
        const id = await runPod();
        const status = await ctrd.status(id);
        // first thing after RunPodSandbox returned: one echo from each place that must reach it
        for (const ns of m.reachFrom) atOnce.push(pingsOnce(ns, status.ip));
        assert.equal(status.state, 'SANDBOX_READY');
        assert.ok(status.pid, 'containerd reports the sandbox pid');
        pods.push({ id, ip: status.ip, pid: status.pid });
      }
      t.diagnostic(`${atOnce.filter(Boolean).length} of ${atOnce.length} single pings right after RunPodSandbox answered`);

      const addrs = new Set<string>();
      for (const pod of pods) {
        assert.match(pod.ip, m.podAddress, `CRI reports an address from the ${mode} pool`);
        addrs.add(pod.ip);
        const journal = readJournal(node, pod.id);
        assert.equal(journal?.state, 'applied', 'testcni journalled the attachment under the sandbox id');
        const lease = journal?.lease?.address ?? '';
        assert.equal(lease.split('/')[0], pod.ip, 'the journal leases the address CRI reports');
        const eth0 = JSON.parse(inPod(pod.pid, ['ip', '-d', '-j', 'addr', 'show', 'dev', 'eth0']).stdout)[0] as { addr_info: { family: string; local: string }[]; linkinfo?: { info_kind?: string } };
        assert.deepEqual(eth0.addr_info.filter((a) => a.family === 'inet').map((a) => a.local), [pod.ip], 'the pod netns holds exactly that address on eth0');
        assert.equal(eth0.linkinfo?.info_kind ?? null, m.podLinkKind ?? 'veth', `eth0 is a ${m.podLinkKind ?? 'veth'}`);
        assert.equal(m.reservation(pod.ip), `${pod.id}/eth0`, 'IPAM reserves it for the sandbox');
        const hostIf = m.hostIf(pod.id);
        if (hostIf) assert.ok(linkNames(node.name).includes(hostIf), 'the host veth is on the node');
        assert.equal(inPod(pod.pid, ['ping', '-n', '-q', '-c', '1', '-W', '1', m.podReaches], true).code, 0, `the pod reaches ${m.podReaches}`);
        assert.equal(verbsDone(logFile, pod.id, 'ADD'), 1, 'containerd called ADD once');
      }
      // what the mode says cannot work (README, limits): asserted so the docs stay true
      for (const ns of m.cannotReach) assert.equal(pingsOnce(ns, pods[0]!.ip), false, `${ns} is not expected to reach a ${mode} pod (a child link and its master do not hear each other)`);
      assert.equal(addrs.size, PODS, 'every pod has its own address');
      assert.equal(ctrd.netnsMounts().length, PODS, 'containerd holds one netns per pod');
      assert.deepEqual(atOnce, atOnce.map(() => true), 'every new pod answered one ping right after RunPodSandbox');
    });

    await t.test('StopPodSandbox then RemovePodSandbox (a second DEL, netns gone) leave nothing behind', async () => {
      assert.equal(pods.length, PODS, 'pods from the previous step');
      for (const pod of pods) {
        await ctrd.cri.stopPodSandbox(pod.id);
        assert.equal(verbsDone(logFile, pod.id, 'DEL'), 1, 'StopPodSandbox: one DEL');
        assert.equal(readJournal(node, pod.id), null, 'StopPodSandbox: no journal');
        assert.equal(m.reservation(pod.ip), undefined, 'StopPodSandbox: address released');
        const hostIf = m.hostIf(pod.id);
        if (hostIf) assert.ok(!linkNames(node.name).includes(hostIf), 'StopPodSandbox: host veth gone');
        await ctrd.cri.removePodSandbox(pod.id);
        assert.equal(verbsDone(logFile, pod.id, 'DEL'), 2, 'RemovePodSandbox: a second DEL, which succeeded');
      }
      assert.deepEqual(await ctrd.cri.listPodSandbox(), [], 'no sandbox left');
      assert.deepEqual(ctrd.netnsMounts(), [], 'no netns mount left');
      assert.deepEqual(ctrd.netnsFiles(), [], 'no netns file left');
      assert.deepEqual(ctrd.cniCacheFiles(), [], 'no libcni cache entry left (every DEL succeeded)');
      const after = modeNodeState(m);
      assert.deepEqual(after.node, before.node, 'node links, addresses, routes, neighbours and iptables are as before');
      assert.deepEqual(after.state, before.state, 'state dir (journals, locks) as before');
      assert.deepEqual(after.ipam, before.ipam, 'IPAM dir as before (cursor aside)');
      assert.deepEqual(pods.filter((p) => m.reservation(p.ip) !== undefined), [], 'no reservation');
    });
  });
}
