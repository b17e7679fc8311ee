// testcni under a real runtime: Debian's containerd (CRI, runc), started by the test inside a
// node network namespace, asked for pod sandboxes over CRI as kubelet would. host-gw, file IPAM,
// a conflist at cniVersion 1.0.0 (containerd 1.6's libcni knows no result version above it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { uniquePrefix, treeSnapshot, inNetns, sh, type TestNode } from '../helpers/netns.ts';
import { Scope, settledNodeState, linkNames, readJournal, reservations } from '../helpers/e2e.ts';
import { Containerd, containerdSkipReason } from '../helpers/containerd.ts';
import { buildPauseImage } from '../helpers/oci-image.ts';
import { toConflist } from '../helpers/conflist.ts';
import { hostVethName } from '../../planner/names.ts';

const skip = containerdSkipReason() ?? undefined;
const GATEWAY = '10.244.0.1';
const FRESH_NODES = 3;
const PODS = 4;

/** One ICMP echo from the node, one second to answer: "reachable at once". */
function nodePingsOnce(node: TestNode, ip: string): boolean {
  return inNetns(node.name, ['ping', '-n', '-q', '-c', '1', '-W', '1', ip], { allowFail: true }).code === 0;
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

function withoutCursor(tree: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tree).filter(([k]) => !k.endsWith('/last_reserved_ip.0')));
}

async function removePod(ctrd: Containerd, id: string): Promise<void> {
  await ctrd.cri.stopPodSandbox(id);
  await ctrd.cri.removePodSandbox(id);
}

test('containerd (CRI v1) runs pod sandboxes on testcni', { skip, timeout: 120_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('cd'));
  const node = scope.node();
  const imageDir = mkdtempSync(join(tmpdir(), `${scope.prefix}-img-`));
  scope.defer(() => rmSync(imageDir, { recursive: true, force: true }));
  const logFile = join(node.dir, 'testcni.log');
  const conflist = toConflist(node.config({ cniVersion: '1.0.0', logFile }));
  const image = buildPauseImage(imageDir);
  const ctrd = await Containerd.start({ prefix: scope.prefix, nodeNs: node.name, conflist, image });
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

  // Issue 6 §2: on a fresh node the bridge and its first port come up together and the kernel
  // makes the bridge operational asynchronously, up to a second later, so the node's first ARP for
  // the first pod was lost (0 of 3 fresh nodes answered here before ADD waited for its links). Each
  // round is a new node netns with a new containerd: removing the bridge of a used node does not
  // reproduce it.
  await t.test('issue 6 §2: the first pod on a fresh node answers ping -c1 -W1 right after RunPodSandbox', async () => {
    const answered: boolean[] = [];
    const lateMs: number[] = [];
    for (let round = 0; round < FRESH_NODES; round++) {
      const fresh = scope.node(`f${round}`);
      const runtime = await Containerd.start({
        prefix: `${scope.prefix}f${round}`, nodeNs: fresh.name, conflist: toConflist(fresh.config({ cniVersion: '1.0.0' })), image,
      });
      try {
        const id = await runtime.runPod({ name: 'first', uid: `${scope.prefix}-first-${round}`, namespace: 'testcni-e2e' });
        const { ip } = await runtime.status(id);
        const t0 = Date.now();
        answered.push(nodePingsOnce(fresh, ip));
        // how late, when it was: for the record, not asserted
        if (!answered.at(-1) && (nodePingsOnce(fresh, ip) || nodePingsOnce(fresh, ip))) lateMs.push(Date.now() - t0);
      } finally {
        runtime.destroy();
        fresh.cleanup();
      }
    }
    const ok = answered.filter(Boolean).length;
    t.diagnostic(`first pod of a fresh node answered at once on ${ok} of ${FRESH_NODES} nodes` +
      (lateMs.length ? `; the others answered a ping sent after ${lateMs.map((m) => `${m} ms`).join(', ')}` : ''));
    assert.equal(ok, FRESH_NODES, `issue 6 §2: the first pod of a fresh node was unreachable right after RunPodSandbox on ${FRESH_NODES - ok} of ${FRESH_NODES} nodes`);
  });

  // A pod started and removed once makes the node-scope state ADD ensures and DEL keeps (the
  // bridge, its address and route, forwarding): from here on the node must return to this.
  const warm = await runPod();
  await removePod(ctrd, warm);
  const before = { node: settledNodeState(node.name), state: treeSnapshot(node.stateDir), ipam: withoutCursor(treeSnapshot(node.ipamDir)) };
  const pods: { id: string; ip: string; pid: number }[] = [];

  await t.test(`RunPodSandbox: each of ${PODS} pods gets its address from testcni and the node reaches it at once`, async () => {
    const atOnce: boolean[] = [];
    for (let i = 0; i < PODS; i++) {
      const id = await runPod();
      const status = await ctrd.status(id);
      atOnce.push(nodePingsOnce(node, status.ip)); // first thing after RunPodSandbox returned
      assert.equal(status.state, 'SANDBOX_READY');
      assert.ok(status.pid, 'containerd reports the sandbox pid');
      pods.push({ id, ip: status.ip, pid: status.pid });
    }
    t.diagnostic(`node reached ${atOnce.filter(Boolean).length} of ${PODS} new pods with one ping right after RunPodSandbox`);

    const addrs = new Set<string>();
    for (const pod of pods) {
      assert.match(pod.ip, /^10\.244\.0\.\d+$/, 'CRI reports an address from the node block');
      addrs.add(pod.ip);
      const journal = readJournal(node, pod.id);
      assert.equal(journal?.state, 'applied', 'testcni journalled the attachment under the sandbox id');
      const lease = journal?.lease?.address ?? '';
      assert.equal(lease.split('/')[0], pod.ip, 'the journal leases the address CRI reports');
      const eth0 = JSON.parse(inPod(pod.pid, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']).stdout)[0] as { addr_info: { family: string; local: string }[] };
      assert.deepEqual(eth0.addr_info.filter((a) => a.family === 'inet').map((a) => a.local), [pod.ip], 'the pod netns holds exactly that address on eth0');
      assert.equal(reservations(node)[pod.ip], `${pod.id}/eth0`, 'the file store reserves it for the sandbox');
      assert.ok(linkNames(node.name).includes(hostVethName(pod.id, 'eth0')), 'the host veth is on the node');
      assert.equal(inPod(pod.pid, ['ping', '-n', '-q', '-c', '1', '-W', '1', GATEWAY], true).code, 0, 'the pod reaches its gateway on the node');
      assert.equal(verbsDone(logFile, pod.id, 'ADD'), 1, 'containerd called ADD once');
    }
    assert.equal(addrs.size, PODS, 'every pod has its own address');
    assert.equal(ctrd.netnsMounts().length, PODS, 'containerd holds one netns per pod');
    assert.deepEqual(atOnce, pods.map(() => true), 'the node reaches every pod with one ping right after RunPodSandbox');
  });

  await t.test('StopPodSandbox then RemovePodSandbox (a second DEL, netns gone) leave nothing behind', async () => {
    assert.equal(pods.length, PODS, 'pods from the previous step');
    for (const pod of pods) {
      await ctrd.cri.stopPodSandbox(pod.id);
      assert.equal(verbsDone(logFile, pod.id, 'DEL'), 1, 'StopPodSandbox: one DEL');
      assert.equal(readJournal(node, pod.id), null, 'StopPodSandbox: no journal');
      assert.equal(reservations(node)[pod.ip], undefined, 'StopPodSandbox: address released');
      assert.ok(!linkNames(node.name).includes(hostVethName(pod.id, 'eth0')), 'StopPodSandbox: host veth gone');
      await ctrd.cri.removePodSandbox(pod.id);
      assert.equal(verbsDone(logFile, pod.id, 'DEL'), 2, 'RemovePodSandbox: a second DEL, which succeeded');
    }
    assert.deepEqual(await ctrd.cri.listPodSandbox(), [], 'no sandbox left');
    assert.deepEqual(ctrd.netnsMounts(), [], 'no netns mount left');
    assert.deepEqual(ctrd.netnsFiles(), [], 'no netns file left');
    assert.deepEqual(ctrd.cniCacheFiles(), [], "no libcni cache entry left (every DEL succeeded)");
    assert.deepEqual(settledNodeState(node.name), before.node, 'node links, addresses, routes, neighbours and iptables are as before');
    assert.deepEqual(treeSnapshot(node.stateDir), before.state, 'state dir (journals, locks) as before');
    assert.deepEqual(withoutCursor(treeSnapshot(node.ipamDir)), before.ipam, 'IPAM dir as before (cursor aside)');
    assert.equal(Object.keys(reservations(node)).length, 0, 'no reservation');
  });
});
