import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIp, formatIp, parseCidr, formatCidr, contains, containsCidr, nthBlock, lastIp } from '../../lib/ipv4.ts';

test('parseIp accepts dotted quads and refuses everything else', () => {
  assert.equal(parseIp('10.244.1.7'), (10 << 24 >>> 0) + (244 << 16) + (1 << 8) + 7);
  assert.equal(parseIp('255.255.255.255'), 0xffffffff);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.a', ' 1.2.3.4', '1.2.3.-1']) {
    assert.equal(parseIp(bad), null, bad);
  }
});

test('formatIp is the inverse of parseIp', () => {
  for (const ip of ['0.0.0.0', '10.244.0.1', '192.168.64.100', '255.255.255.255']) assert.equal(formatIp(parseIp(ip)!), ip);
});

test('parseCidr masks host bits unless strict', () => {
  assert.equal(formatCidr(parseCidr('10.244.3.9/16')!), '10.244.0.0/16');
  assert.equal(parseCidr('10.244.3.9/16', true), null);
  assert.equal(formatCidr(parseCidr('0.0.0.0/0')!), '0.0.0.0/0');
  for (const bad of ['10.244.0.0', '10.244.0.0/33', '10.244.0.0/', '10.244.0.0/x', 'x/16', '10.244.0.0/016']) {
    assert.equal(parseCidr(bad), null, bad);
  }
});

test('containment and blocks', () => {
  const net = parseCidr('10.244.0.0/16')!;
  assert.ok(contains(net, parseIp('10.244.255.255')!));
  assert.ok(!contains(net, parseIp('10.245.0.0')!));
  assert.ok(containsCidr(net, parseCidr('10.244.7.0/24')!));
  assert.ok(!containsCidr(parseCidr('10.244.7.0/24')!, net));
  assert.equal(formatCidr(nthBlock(net, 24, 0)!), '10.244.0.0/24');
  assert.equal(formatCidr(nthBlock(net, 24, 255)!), '10.244.255.0/24');
  assert.equal(nthBlock(net, 24, 256), null);
  assert.equal(nthBlock(net, 8, 0), null);
  assert.equal(formatIp(lastIp(parseCidr('10.244.1.0/24')!)), '10.244.1.255');
});
