// Forwarding is an outcome, not a write (issue 6 §3): a node whose ip_forward reads 1 while its
// default and uplink forwarding are 0 (what concurrent writers of ip_forward can leave behind)
// gets a pod that another host reaches after one ADD.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rootSkipReason, uniquePrefix, inNetns, addNetns, delNetns, sh } from '../helpers/netns.ts';
import { Scope, cni, show } from '../helpers/e2e.ts';

const skip = rootSkipReason(['ping']) ?? undefined;
const sysctl = (ns: string, key: string) => inNetns(ns, ['sysctl', '-n', key]).stdout.trim();

test('ip_forward 1 with default and uplink forwarding 0: after one ADD another host reaches the pod', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('fw'));
  const node = scope.node();
  const remote = `${scope.prefix}r`;
  scope.defer(() => delNetns(remote));
  addNetns(remote);
  // The node's uplink eth0 to a remote host on the underlay; the remote routes the pod block
  // through the node.
  sh(['ip', '-n', node.name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'up0', 'netns', remote]);
  inNetns(node.name, ['ip', 'addr', 'add', '198.18.0.11/24', 'dev', 'eth0']);
  inNetns(node.name, ['ip', 'link', 'set', 'eth0', 'up']);
  inNetns(node.name, ['ip', 'route', 'add', 'default', 'via', '198.18.0.1']);
  inNetns(remote, ['ip', 'addr', 'add', '198.18.0.1/24', 'dev', 'up0']);
  inNetns(remote, ['ip', 'link', 'set', 'up0', 'up']);
  inNetns(remote, ['ip', 'route', 'add', '10.244.0.0/24', 'via', '198.18.0.11']);
  // The broken state: ip_forward says 1, the devices say 0.
  inNetns(node.name, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  inNetns(node.name, ['sysctl', '-q', '-w', 'net.ipv4.conf.default.forwarding=0', 'net.ipv4.conf.eth0.forwarding=0']);
  assert.deepEqual([sysctl(node.name, 'net.ipv4.ip_forward'), sysctl(node.name, 'net.ipv4.conf.eth0.forwarding')], ['1', '0']);

  const pod = scope.pod('a');
  const r = cni(node, { command: 'ADD', containerId: `${scope.prefix}-a`, netns: pod.path });
  assert.equal(r.code, 0, show(r));
  const ip = (r.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
  for (const key of ['net.ipv4.conf.default.forwarding', 'net.ipv4.conf.eth0.forwarding', 'net.ipv4.conf.testcni0.forwarding']) {
    assert.equal(sysctl(node.name, key), '1', `${key} repaired`);
  }
  const p = inNetns(remote, ['ping', '-n', '-q', '-c', '1', '-W', '2', ip], { allowFail: true });
  assert.equal(p.code, 0, `the remote host reaches the pod at ${ip}: ${p.stdout}`);
});
