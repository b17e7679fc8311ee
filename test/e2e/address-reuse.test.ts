// An address handed out again (a restarted agent's IPAM starts from the block's first free
// address; file IPAM without its cursor does too) must reach its new pod at once: the node's
// neighbour entry for it on the bridge still names the old pod's MAC after that pod is gone,
// and the kernel keeps using a REACHABLE entry (seen in the 3-node lab: a pod added after an
// agent restart was unreachable for seconds). ADD writes the entry with the new pod's MAC; DEL
// removes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { rootSkipReason, uniquePrefix, inNetns } from '../helpers/netns.ts';
import { Scope, cni, show, podLink } from '../helpers/e2e.ts';

const skip = rootSkipReason(['ping']) ?? undefined;

test('host-gw: an address used again reaches its new pod at once; DEL leaves no neighbour entry for it', { skip, timeout: 60_000 }, (t) => {
  const scope = new Scope(t, uniquePrefix('ar'));
  const node = scope.node();
  const config = node.config();
  const neigh = (ip: string) => inNetns(node.name, ['ip', '-j', 'neigh', 'show', 'to', ip, 'dev', 'testcni0']).stdout;
  const pods = { a: scope.pod('a'), b: scope.pod('b') };
  const add = (n: 'a' | 'b') => {
    const r = cni(node, { command: 'ADD', containerId: `${scope.prefix}-${n}`, netns: pods[n].path, config });
    assert.equal(r.code, 0, show(r));
    return (r.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
  };

  const ip = add('a');
  assert.equal(inNetns(node.name, ['ping', '-n', '-q', '-c', '1', '-W', '1', ip], { allowFail: true }).code, 0, 'the node reaches pod a');
  const del = cni(node, { command: 'DEL', containerId: `${scope.prefix}-a`, netns: pods.a.path, config });
  assert.equal(del.code, 0, show(del));
  assert.deepEqual(JSON.parse(neigh(ip) || '[]'), [], `no neighbour entry for ${ip} once its pod is gone`);

  // The next pod gets the same address (no cursor, as after an agent restart), while the node
  // still holds a confirmed entry for it with another MAC (as one refreshed by traffic would be).
  rmSync(join(node.ipamDir, String(config.name), 'last_reserved_ip.0'), { force: true });
  inNetns(node.name, ['ip', 'neigh', 'replace', ip, 'lladdr', '02:00:5e:00:00:99', 'dev', 'testcni0', 'nud', 'reachable']);
  assert.equal(add('b'), ip, 'pod b gets the address again');
  const mac = podLink(pods.b.name)!.address;
  assert.deepEqual((JSON.parse(neigh(ip)) as { lladdr: string }[]).map((e) => e.lladdr), [mac], 'the node\'s entry names pod b');
  assert.equal(inNetns(node.name, ['ping', '-n', '-q', '-c', '1', '-W', '1', ip], { allowFail: true }).code, 0, 'the node reaches pod b at once');
});
