// vxlan on one node with file IPAM and no agent, the built plugin run as a runtime runs it: the
// first ADD sets the node up (bpffs, pins, device, maps, programs) and its pod answers the moment
// ADD returns; pods reach each other, their gateway and the node; CHECK finds a stale endpoint
// entry; DEL leaves the node as it was (map entries and filters included); GC removes what pods
// left behind; bad values are code 7 naming the field, with nothing changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { uniquePrefix, inNetns } from '../helpers/netns.ts';
import { Scope, cni, show, settledNodeState, reservations } from '../helpers/e2e.ts';
import { bpfSkipReason, vxlanTestNode } from '../helpers/bpf.ts';
import { hostVethName } from '../../planner/names.ts';
import { txOffload } from '../../planner/modes/vxlan/dataplane.ts';
import { release } from 'node:os';

const skip = bpfSkipReason(['ethtool', 'ping', 'mv', 'mkdir', 'rm']) ?? undefined;

const pingOnce = (ns: string, ip: string) => inNetns(ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', ip], { allowFail: true }).code === 0;

test('vxlan on one node (file IPAM, no agent): ADD sets the node up, pods answer at once, DEL leaves nothing', { skip, timeout: 120_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('vx'));
  const { node, config, pins, bpfState } = vxlanTestNode(scope);
  const conf = config();
  const pods = ['a', 'b', 'c'].map((tag) => ({ ...scope.pod(tag), cid: `${scope.prefix}-${tag}` }));
  const [a, b, c] = pods as [typeof pods[0], typeof pods[0], typeof pods[0]];
  const add = (p: typeof a) => cni(node, { command: 'ADD', containerId: p.cid, netns: p.path, config: conf });
  const ipOf = (r: ReturnType<typeof add>) => ((r.json!.ips as { address: string }[])[0]!.address).split('/')[0]!;

  await t.test('the first ADD on a fresh node: device, maps and programs made; the pod answers right after', () => {
    const r = add(a);
    assert.equal(r.code, 0, show(r));
    const ip = ipOf(r);
    // Right after ADD returned: no retries, one echo with a 1 s wait.
    assert.ok(pingOnce(node.name, ip), 'node -> pod');
    assert.ok(pingOnce(a.name, '10.244.0.1'), 'pod -> its gateway');
    const link = JSON.parse(inNetns(node.name, ['ip', '-j', '-d', 'link', 'show', 'dev', 'testcni.vxlan']).stdout)[0];
    assert.equal(link.linkinfo.info_data.external, true);
    assert.equal(link.linkinfo.info_data.port, 8472);
    assert.equal(link.mtu, 1450, 'the uplink\'s 1500 less 50');
    assert.equal(JSON.parse(inNetns(node.name, ['ethtool', '--json', '-k', 'testcni.vxlan']).stdout)[0]['tx-checksumming'].active,
      txOffload('auto', release()).on, 'tx checksum offload: auto (on from Linux 5.7)');
    assert.equal(readdirSync(pins).length, 1, 'one pin directory: this node\'s');
    assert.deepEqual(bpfState().attached, [
      `${hostVethName(a.cid, 'eth0')} clsact/ingress tcni_from_pod:[*fsobj]`,
      'testcni.vxlan clsact/egress tcni_to_vxlan:[*fsobj]', 'testcni.vxlan clsact/ingress tcni_from_vxlan:[*fsobj]',
    ]);
  });

  const before = { node: settledNodeState(node.name), bpf: bpfState() };

  await t.test('a second pod: the node steps are skipped; pods reach each other, their gateway, the node', () => {
    const r = add(b);
    assert.equal(r.code, 0, show(r));
    const [ipA, ipB] = [ipOf({ json: { ips: [{ address: `${reservationOf(a.cid)}/32` }] } } as never), ipOf(r)];
    assert.ok(pingOnce(b.name, ipA) && pingOnce(a.name, ipB), 'pod <-> pod (bpf_redirect_peer)');
    assert.ok(pingOnce(b.name, '10.244.0.1'), 'pod -> gateway');
    assert.ok(pingOnce(b.name, '198.18.0.11'), 'pod -> the node\'s underlay address');
    assert.equal((bpfState().endpoints as unknown[]).length, 2);
  });

  await t.test('CHECK holds; an endpoint entry pointing at another link is drift (105)', () => {
    const prev = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: b.path }], ips: [{ address: `${reservationOf(b.cid)}/32`, interface: 0 }] };
    const check = () => cni(node, { command: 'CHECK', containerId: b.cid, netns: b.path, config: { ...conf, prevResult: prev } });
    assert.equal(check().code, 0, show(check()));
    const dir = readdirSync(pins)[0]!;
    const key = reservationOf(b.cid).split('.').map((x) => Number(x).toString(16).padStart(2, '0'));
    const entry = JSON.parse(inNetns(node.name, ['bpftool', '-j', 'map', 'lookup', 'pinned', `${pins}/${dir}/maps/testcni_eps`, 'key', 'hex', ...key]).stdout);
    const stale = ['01', '00', '00', '00', ...(entry.value as string[]).slice(4).map((x) => x.slice(2))];
    inNetns(node.name, ['bpftool', 'map', 'update', 'pinned', `${pins}/${dir}/maps/testcni_eps`, 'key', 'hex', ...key, 'value', 'hex', ...stale]);
    const r = check();
    assert.equal(r.code, 1);
    assert.equal(r.json?.code, 105, show(r));
    assert.match(String(r.json?.details), /bpf\.map\.update:host:testcni_eps:/);
  });

  await t.test('DEL: the entry, then the veth (its route and filter with it); the node as it was; DEL again is fine', () => {
    for (let i = 0; i < 2; i++) {
      const r = cni(node, { command: 'DEL', containerId: b.cid, netns: b.path, config: conf });
      assert.equal(r.code, 0, show(r));
    }
    assert.deepEqual(settledNodeState(node.name), before.node);
    assert.deepEqual(bpfState(), before.bpf);
  });

  await t.test('GC: an attachment not in the valid list goes, and so does an endpoint entry whose veth is gone', () => {
    const r = add(c);
    assert.equal(r.code, 0, show(r));
    // A stray entry no journal knows (its veth gone): only the sweep finds it.
    const dir = readdirSync(pins)[0]!;
    inNetns(node.name, ['bpftool', 'map', 'update', 'pinned', `${pins}/${dir}/maps/testcni_eps`, 'key', 'hex', '0a', 'f4', '00', 'fe', 'value', 'hex', 'ff', 'ff', '00', '00', ...Array(12).fill('00')]);
    const gc = cni(node, { command: 'GC', config: { ...conf, 'cni.dev/valid-attachments': [{ containerID: a.cid, ifname: 'eth0' }] } });
    assert.equal(gc.code, 0, show(gc));
    assert.deepEqual(settledNodeState(node.name), before.node);
    assert.deepEqual(bpfState(), before.bpf);
    assert.ok(pingOnce(node.name, reservationOf(a.cid)), 'the valid pod is untouched');
  });

  await t.test('bad values: code 7 naming the field; nothing leased, nothing on the node changed', () => {
    const rows: [Record<string, unknown>, string][] = [
      [{ vxlan: { vni: 0 } }, 'vxlan.vni'],
      [{ vxlan: { vni: 16777216 } }, 'vxlan.vni'],
      [{ vxlan: { port: 0 } }, 'vxlan.port'],
      [{ vxlan: { maxEndpoints: 0 } }, 'vxlan.maxEndpoints'],
      [{ vxlan: { maxRemoteBlocks: 0 } }, 'vxlan.maxRemoteBlocks'],
      [{ vxlan: { mtu: 1451 } }, 'vxlan.mtu'],
      [{ mtu: 1460 }, 'mtu'],
    ];
    const pod = scope.pod('bad');
    const state = () => ({ node: settledNodeState(node.name), bpf: bpfState(), ipam: reservations(node), pins: readdirSync(pins) });
    const was = state();
    for (const [extra, field] of rows) {
      const r = cni(node, { command: 'ADD', containerId: `${scope.prefix}-bad`, netns: pod.path, config: config(extra) });
      assert.equal(r.code, 1, JSON.stringify(extra));
      assert.equal(r.json?.code, 7, show(r));
      assert.equal(r.json?.msg, `invalid network config: ${field}`, show(r));
      assert.deepEqual(state(), was, `${JSON.stringify(extra)}: nothing changed`);
    }
  });

  function reservationOf(cid: string): string {
    return Object.entries(reservations(node)).find(([, owner]) => owner === `${cid}/eth0`)![0];
  }
});
