import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostVethName, podMac, hostVethMac, bridgeMac, derivedMac } from '../../planner/names.ts';

test('host veth names are derived, short enough for the kernel, and distinct per attachment', () => {
  const a = hostVethName('3f9a1c2b7d0e4c1a', 'eth0');
  assert.equal(a, hostVethName('3f9a1c2b7d0e4c1a', 'eth0'), 'deterministic: DEL can recompute it');
  assert.match(a, /^tc[0-9a-f]{11}$/);
  assert.ok(Buffer.byteLength(a) <= 15);
  assert.notEqual(a, hostVethName('3f9a1c2b7d0e4c1a', 'eth1'));
  assert.notEqual(a, hostVethName('3f9a1c2b7d0e4c1b', 'eth0'));
  const many = new Set(Array.from({ length: 5000 }, (_, i) => hostVethName(`c${i}`, 'eth0')));
  assert.equal(many.size, 5000);
});

test('derived MACs are locally administered unicast and differ per role', () => {
  for (const mac of [podMac('c', 'eth0'), hostVethMac('c', 'eth0'), bridgeMac('testcni0', '10.244.0.1/24'), derivedMac('x')]) {
    assert.match(mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    const first = parseInt(mac.slice(0, 2), 16);
    assert.equal(first & 0x01, 0, `${mac} is unicast`);
    assert.equal(first & 0x02, 0x02, `${mac} is locally administered`);
  }
  assert.notEqual(podMac('c', 'eth0'), hostVethMac('c', 'eth0'));
});
