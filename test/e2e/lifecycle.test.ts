// ADD -> CHECK -> DEL -> DEL through the built plugin leaves the node as it found it, for every
// supported cniVersion; ipMasq's rule comes and goes with its pod; CHECK notices drift.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rootSkipReason, uniquePrefix, treeSnapshot, inNetns, type TestNode } from '../helpers/netns.ts';
import {
  Scope, cni, show, settledNodeState, podLink, podDefaultRoutes, networkOf, E2E_VERSIONS, BRIDGE,
} from '../helpers/e2e.ts';

const skip = rootSkipReason() ?? undefined;
const CURSOR = 'last_reserved_ip.0';
const GATEWAY = '10.244.0.1';

interface Snapshot {
  node: Record<string, unknown>;
  state: Record<string, string>;
  ipam: Record<string, string>;
}

function snapshot(node: TestNode): Snapshot {
  return { node: settledNodeState(node.name), state: treeSnapshot(node.stateDir), ipam: treeSnapshot(node.ipamDir) };
}

/** The ipam tree without the allocation cursor: the one file a full ADD+DEL may change. */
function withoutCursor(tree: Record<string, string>, network: string): Record<string, string> {
  const { [`/${network}/${CURSOR}`]: _cursor, ...rest } = tree;
  return rest;
}

/**
 * ADD+DEL of a throwaway pod: creates the node-scope objects ADD ensures once and never removes
 * (bridge, its gateway address and connected route, ip_forward; the nat chains with ipMasq),
 * so that a later snapshot can be compared for full equality.
 */
function warmUp(scope: Scope, node: TestNode, config: Record<string, unknown>): void {
  const pod = scope.pod('w');
  const cid = `${scope.prefix}-warm`;
  const add = cni(node, { command: 'ADD', containerId: cid, netns: pod.path, config });
  assert.equal(add.code, 0, `warm-up ADD: ${show(add)}`);
  const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config });
  assert.equal(del.code, 0, `warm-up DEL: ${show(del)}`);
}

function assertBackTo(node: TestNode, before: Snapshot, leasedIp: string): void {
  const after = snapshot(node);
  const network = networkOf(node);
  assert.deepEqual(after.node, before.node, 'node links, addresses, routes, neighbours and iptables are as before');
  assert.deepEqual(after.state, before.state, 'state dir (journals, locks) is as before');
  // Everything in the IPAM dir is as before except the cursor, which records the last address handed out.
  assert.deepEqual(withoutCursor(after.ipam, network), withoutCursor(before.ipam, network), 'IPAM dir is as before (cursor aside)');
  assert.equal(after.ipam[`/${network}/${CURSOR}`], leasedIp, 'the cursor records the address just handed out');
}

function atLeast(v: string, min: string): boolean {
  const p = (s: string) => s.split('.').map(Number);
  const [a, b] = [p(v), p(min)];
  for (let i = 0; i < 3; i++) if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  return true;
}

type Json = Record<string, unknown>;

/** The ADD result in the wire shape of `version`, and the pod as that result describes it. */
function assertResult(result: Json, version: string, pod: { name: string; path: string }): string {
  assert.equal(result.cniVersion, version);
  const ifs = result.interfaces as Json[];
  const ips = result.ips as Json[];
  assert.equal(ifs.length, 3, 'bridge, host veth, pod interface');
  assert.equal(ifs[0]!.name, BRIDGE);
  assert.equal(ifs[0]!.sandbox, undefined, 'the bridge is on the node');
  assert.equal(ifs[1]!.sandbox, undefined, 'the host veth is on the node');
  const podIf = ifs[2]!;
  assert.equal(podIf.name, 'eth0');
  assert.equal(podIf.sandbox, pod.path, 'interface 2 lives in the pod netns');
  const eth0 = podLink(pod.name);
  assert.ok(eth0, 'eth0 exists in the pod');
  assert.equal(podIf.mac, eth0.address, 'reported MAC is the MAC of eth0 in the pod');
  // interfaces[].mtu exists from 1.1.0; the plugin reports it for the veth ends it creates.
  for (const i of ifs.slice(1)) assert.equal('mtu' in i, atLeast(version, '1.1.0'), `interfaces[].mtu only from 1.1.0 (${i.name})`);
  if ('mtu' in podIf) assert.equal(podIf.mtu, eth0.mtu, 'reported MTU is the MTU of eth0');

  assert.equal(ips.length, 1);
  const ip = ips[0]!;
  const expectKeys = atLeast(version, '1.0.0') ? ['address', 'gateway', 'interface'] : ['version', 'address', 'gateway', 'interface'];
  assert.deepEqual(Object.keys(ip), expectKeys, 'ips[].version only before 1.0.0');
  if (!atLeast(version, '1.0.0')) assert.equal(ip.version, '4');
  assert.equal(ip.interface, 2, 'the address belongs to the pod interface');
  assert.equal(ip.gateway, GATEWAY);
  const [addr, prefix] = String(ip.address).split('/');
  const v4 = eth0.addr_info.filter((a) => a.family === 'inet');
  assert.deepEqual(v4.map((a) => `${a.local}/${a.prefixlen}`), [`${addr}/${prefix}`], 'the pod has exactly the reported address');

  assert.equal(prefix, '32', 'a host address: everything goes through the gateway');
  assert.deepEqual(result.routes, [{ dst: `${GATEWAY}/32` }, { dst: '0.0.0.0/0', gw: GATEWAY }]);
  const routes = podDefaultRoutes(pod.name);
  assert.deepEqual(routes.map((r) => [r.gateway, r.dev]), [[GATEWAY, 'eth0']], 'the pod routes by default through the reported gateway');
  const all = JSON.parse(inNetns(pod.name, ['ip', '-j', '-4', 'route', 'show']).stdout) as { dst: string; dev: string; scope?: string; gateway?: string }[];
  assert.deepEqual(all.map((r) => `${r.dst} ${r.gateway ?? r.scope} ${r.dev}`).sort(), [`${GATEWAY} link eth0`, `default ${GATEWAY} eth0`].sort(),
    'exactly the reported routes: the gateway on-link, the rest through it');
  assert.deepEqual(result.dns, {});
  return addr!;
}

test('ADD -> CHECK -> DEL -> DEL leaves the node identical, for every cniVersion', { skip, timeout: 120_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('lc'));
  const node = scope.node();
  warmUp(scope, node, node.config());
  const before = snapshot(node);

  for (const [i, version] of E2E_VERSIONS.entries()) {
    await t.test(`cniVersion ${version}`, () => {
      const config = node.config({ cniVersion: version });
      const pod = scope.pod(String(i));
      const cid = `${scope.prefix}-v${i}`;

      const add = cni(node, { command: 'ADD', containerId: cid, netns: pod.path, config });
      assert.equal(add.code, 0, `ADD: ${show(add)}`);
      assert.ok(add.json, 'ADD prints a result');
      const ip = assertResult(add.json, version, pod);

      const check = cni(node, { command: 'CHECK', containerId: cid, netns: pod.path, config: { ...config, prevResult: add.json } });
      if (atLeast(version, '0.4.0')) {
        assert.equal(check.code, 0, `CHECK: ${show(check)}`);
        assert.equal(check.stdout, '', 'CHECK prints nothing on success');
      } else {
        // CHECK does not exist before 0.4.0: the plugin must refuse it as an incompatible version.
        assert.equal(check.code, 1, `CHECK at ${version}: ${show(check)}`);
        assert.equal((check.json as { code?: number } | null)?.code, 1, show(check));
      }

      for (const round of ['first', 'second']) {
        const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config });
        assert.equal(del.code, 0, `${round} DEL: ${show(del)}`);
        assert.equal(del.stdout, '', `${round} DEL prints nothing`);
      }
      assert.equal(podLink(pod.name), null, 'eth0 is gone from the pod');
      assertBackTo(node, before, ip);
    });
  }
});

test('ipMasq: ADD adds exactly one MASQUERADE rule tagged with the container id, DEL removes it', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('lm'));
  const node = scope.node();
  const config = node.config({ ipMasq: true });
  warmUp(scope, node, config); // also creates the nat table and its chains, which stay
  const before = snapshot(node);
  const pod = scope.pod('0');
  const cid = `${scope.prefix}-masq`;

  const add = cni(node, { command: 'ADD', containerId: cid, netns: pod.path, config });
  assert.equal(add.code, 0, `ADD: ${show(add)}`);
  const ip = String((add.json as { ips: { address: string }[] }).ips[0]!.address).split('/')[0]!;
  const nat = natPostrouting(node);
  const masq = nat.filter((l) => l.includes('-j MASQUERADE'));
  assert.equal(masq.length, 1, `one MASQUERADE rule in nat POSTROUTING: ${nat.join(' | ')}`);
  assert.ok(masq[0]!.includes(cid), `the rule is tagged with the container id: ${masq[0]}`);
  assert.ok(masq[0]!.includes(`-s ${ip}/32`), `the rule matches the pod address: ${masq[0]}`);
  assert.equal(nat.length, natPostrouting(node, before).length + 1, 'nothing else added to nat POSTROUTING');

  const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config });
  assert.equal(del.code, 0, `DEL: ${show(del)}`);
  assert.deepEqual(natPostrouting(node).filter((l) => l.includes(cid)), [], 'rule removed');
  assertBackTo(node, before, ip);
});

/** nat POSTROUTING rules of the node now (or in a snapshot). */
function natPostrouting(node: TestNode, snap?: Snapshot): string[] {
  const lines = snap ? (snap.node.iptables as string[]) : inNetns(node.name, ['iptables-save', '-t', 'nat']).stdout.split('\n');
  let inNat = false;
  return lines.filter((l) => {
    if (l.startsWith('*')) inNat = l === '*nat';
    return inNat && l.startsWith('-A POSTROUTING ');
  });
}

test('CHECK fails with code 105 naming the route step when the pod lost its default route', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('ld'));
  const node = scope.node();
  const config = node.config();
  const pod = scope.pod('0');
  const cid = `${scope.prefix}-drift`;
  const add = cni(node, { command: 'ADD', containerId: cid, netns: pod.path, config });
  assert.equal(add.code, 0, `ADD: ${show(add)}`);
  const withPrev = { ...config, prevResult: add.json };
  const ok = cni(node, { command: 'CHECK', containerId: cid, netns: pod.path, config: withPrev });
  assert.equal(ok.code, 0, `CHECK before drift: ${show(ok)}`);

  inNetns(pod.name, ['ip', 'route', 'del', 'default']);
  const check = cni(node, { command: 'CHECK', containerId: cid, netns: pod.path, config: withPrev });
  assert.equal(check.code, 1, show(check));
  const err = check.json as { code: number; msg: string; details?: string };
  assert.equal(err.code, 105, show(check));
  const text = `${err.msg} ${err.details ?? ''}`;
  assert.match(text, /route:pod:default/, 'the message names the route step');
  // Only the route drifted: no other step may be reported.
  assert.deepEqual([...text.matchAll(/([a-z.]+:(?:pod|host):[^\s:;]+): not in effect/g)].map((m) => m[1]), ['route:pod:default']);

  const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config });
  assert.equal(del.code, 0, `DEL after drift: ${show(del)}`);
});
