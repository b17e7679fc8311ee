// Map entries encoded for bpftool exactly as bpf/testcni_maps.h lays them out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/netns.ts';
import {
  ENDPOINTS, REMOTE, CONFIG, MAPS, PROGRAMS,
  endpointEntry, remoteEntry, configEntry, remoteKey, updateArgs, keyArgs, lookupJson,
  decodeEndpoint, decodeRemote, decodeConfig, parseDump, parseHexBytes, createArgs, loadallArgs,
} from '../../bpf/maps.ts';

test('endpoint: pod IP in network order -> ifindex (host order), pod MAC, host MAC', () => {
  const e = endpointEntry({ ip: '10.244.1.2', ifindex: 0x01020304, podMac: '02:aa:bb:cc:dd:ee', hostMac: '0a:00:00:00:00:01' });
  assert.deepEqual(updateArgs(e), [
    'key', 'hex', '0a', 'f4', '01', '02',
    'value', 'hex', '04', '03', '02', '01', '02', 'aa', 'bb', 'cc', 'dd', 'ee', '0a', '00', '00', '00', '00', '01',
  ]);
  assert.equal(e.value.length, ENDPOINTS.valueSize);
  assert.equal(e.key.length, ENDPOINTS.keySize);
});

test('remote: LPM key is prefix length (host order) then the network; value node IP, VTEP MAC, zero padding', () => {
  const e = remoteEntry({ cidr: '10.244.2.7/24', nodeIp: '198.18.0.2', vtepMac: '02:00:00:00:02:01' });
  assert.deepEqual(e.key, [24, 0, 0, 0, 10, 244, 2, 0], 'host bits are cleared');
  assert.deepEqual(e.value, [198, 18, 0, 2, 2, 0, 0, 0, 2, 1, 0, 0]);
  assert.equal(e.key.length, REMOTE.keySize);
  assert.equal(e.value.length, REMOTE.valueSize);
  assert.deepEqual(remoteKey('198.18.0.2/32'), [32, 0, 0, 0, 198, 18, 0, 2]);
});

test('config: key 0; ifindex and VNI host order, device MAC, TTL (64 by default), zero padding', () => {
  const e = configEntry({ vxlanIfindex: 7, vni: 13190, vxlanMac: '02:00:00:00:01:01' });
  assert.deepEqual(e.key, [0, 0, 0, 0]);
  assert.deepEqual(e.value, [7, 0, 0, 0, 0x86, 0x33, 0, 0, 2, 0, 0, 0, 1, 1, 64, 0]);
  assert.equal(e.value.length, CONFIG.valueSize);
  assert.equal(configEntry({ vxlanIfindex: 7, vni: 1, vxlanMac: '02:00:00:00:01:01', ttl: 5 }).value[14], 5);
});

test('bad values are refused, naming what is wrong', () => {
  const mac = '02:00:00:00:01:01';
  assert.throws(() => configEntry({ vxlanIfindex: 7, vni: 0x1000000, vxlanMac: mac }), /VNI out of range/);
  assert.throws(() => configEntry({ vxlanIfindex: 7, vni: -1, vxlanMac: mac }), /VNI out of range/);
  assert.throws(() => configEntry({ vxlanIfindex: 7, vni: 1, vxlanMac: mac, ttl: 0 }), /TTL out of range/);
  assert.throws(() => configEntry({ vxlanIfindex: 0, vni: 1, vxlanMac: mac }), /ifindex/);
  assert.throws(() => endpointEntry({ ip: '10.244.1.256', ifindex: 3, podMac: mac, hostMac: mac }), /not an IPv4 address/);
  assert.throws(() => endpointEntry({ ip: '10.244.1.2', ifindex: 3, podMac: '02:00:00:00:01', hostMac: mac }), /not a MAC/);
  assert.throws(() => endpointEntry({ ip: '10.244.1.2', ifindex: 2 ** 32, podMac: mac, hostMac: mac }), /ifindex out of range/);
  assert.throws(() => remoteEntry({ cidr: '10.244.2.0', nodeIp: '198.18.0.2', vtepMac: mac }), /not an IPv4 CIDR/);
  assert.throws(() => createArgs(ENDPOINTS, '/x', 0), /entries out of range/);
});

test('bpftool JSON (lookup, dump) decodes back to the entries', () => {
  const ep = { ip: '10.244.1.2', ifindex: 4242, podMac: '02:aa:bb:cc:dd:ee', hostMac: '0a:00:00:00:00:01' };
  const r = { cidr: '10.244.2.0/24', nodeIp: '198.18.0.2', vtepMac: '02:00:00:00:02:01' };
  const c = { vxlanIfindex: 3, vni: 0xffffff, vxlanMac: '02:00:00:00:01:01', ttl: 64 };
  const dump = (e: ReturnType<typeof endpointEntry>) => JSON.parse(lookupJson(e));
  assert.equal(lookupJson(endpointEntry(ep)).slice(0, 36), '{"key":["0x0a","0xf4","0x01","0x02"]');
  const [e1, e2, e3] = parseDump([dump(endpointEntry(ep)), dump(remoteEntry(r)), dump(configEntry(c))]);
  assert.deepEqual(decodeEndpoint(e1!), ep);
  assert.deepEqual(decodeRemote(e2!), r);
  assert.deepEqual(decodeConfig(e3!), c);
  assert.throws(() => parseHexBytes(['0x1']), /not a bpftool byte/);
  assert.throws(() => parseDump({}), /JSON array/);
  assert.throws(() => parseDump([{ key: [] }]), /without key\/value/);
  assert.deepEqual(keyArgs([1, 255]), ['key', 'hex', '01', 'ff']);
});

test('map creation and loadall arguments reuse the pinned maps by name', () => {
  assert.deepEqual(createArgs(REMOTE, '/sys/fs/bpf/testcni/n1/maps/testcni_remote', 4096), [
    'map', 'create', '/sys/fs/bpf/testcni/n1/maps/testcni_remote', 'type', 'lpm_trie', 'key', '8', 'value', '12',
    'entries', '4096', 'name', 'testcni_remote', 'flags', '1',
  ]);
  assert.deepEqual(loadallArgs('/o/vxlan.o', '/p/progs', '/p/maps'), [
    'prog', 'loadall', '/o/vxlan.o', '/p/progs', 'type', 'classifier',
    'map', 'name', 'testcni_eps', 'pinned', '/p/maps/testcni_eps',
    'map', 'name', 'testcni_remote', 'pinned', '/p/maps/testcni_remote',
    'map', 'name', 'testcni_cfg', 'pinned', '/p/maps/testcni_cfg',
  ]);
});

test('the TypeScript layouts match bpf/testcni_maps.h and the program names bpf/vxlan.c', () => {
  const header = readFileSync(join(ROOT, 'bpf/testcni_maps.h'), 'utf8');
  const source = readFileSync(join(ROOT, 'bpf/vxlan.c'), 'utf8');
  const define = (name: string) => header.match(new RegExp(`#define ${name}\\s+"([^"]+)"`))?.[1];
  assert.deepEqual([define('TESTCNI_MAP_ENDPOINTS'), define('TESTCNI_MAP_REMOTE'), define('TESTCNI_MAP_CONFIG')], MAPS.map((m) => m.name));
  for (const m of MAPS) {
    assert.ok(m.name.length <= 15, `${m.name}: kernel object names have at most 15 characters`);
    assert.match(source, new RegExp(`} ${m.name} SEC\\("\\.maps"\\)`));
  }
  for (const p of Object.values(PROGRAMS)) {
    assert.ok(p.length <= 15, p);
    assert.match(source, new RegExp(`int ${p}\\(struct __sk_buff \\*skb\\)`));
  }
  // Field sizes of each struct add up to the sizes the TS side encodes.
  const structSize = (name: string) => {
    const body = header.match(new RegExp(`struct ${name} \\{([^}]*)\\};`))?.[1] ?? '';
    return [...body.matchAll(/(__u8|__u16|__u32|__be32)\s+\w+(?:\[(\d+)\])?;/g)]
      .reduce((n, [, type, count]) => n + ({ __u8: 1, __u16: 2, __u32: 4, __be32: 4 }[type!]!) * Number(count ?? 1), 0);
  };
  assert.equal(structSize('endpoint_key'), ENDPOINTS.keySize);
  assert.equal(structSize('endpoint'), ENDPOINTS.valueSize);
  assert.equal(structSize('remote_key'), REMOTE.keySize);
  assert.equal(structSize('remote'), REMOTE.valueSize);
  assert.equal(structSize('config'), CONFIG.valueSize);
});
