import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serialiseResult, parsePrevResult, type Result } from '../../cni/result.ts';
import { SUPPORTED_VERSIONS } from '../../cni/version.ts';

// One result using every field the internal shape has, 1.1-only ones included.
const RESULT: Result = {
  interfaces: [
    { name: 'testcni0', mac: '5e:47:95:62:ba:7e' },
    { name: 'tcd72e032fedd', mac: '1a:3a:6d:70:94:7a', mtu: 1500 },
    { name: 'eth0', mac: 'ca:cb:77:7d:34:8b', mtu: 1450, sandbox: '/var/run/netns/cni-1234' },
  ],
  ips: [
    { address: '10.244.1.7/24', gateway: '10.244.1.1', interface: 2 },
    { address: 'fd00::7/64', interface: 2 },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '10.244.1.1' },
    { dst: '10.96.0.0/12', gw: '10.244.1.1', mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 },
  ],
  dns: { nameservers: ['10.96.0.10'] },
};

const LEGACY = ['0.3.0', '0.3.1', '0.4.0'] as const;

test('every supported version is covered by this file', () => {
  assert.deepEqual([...SUPPORTED_VERSIONS], [...LEGACY, '1.0.0', '1.1.0']);
});

for (const v of LEGACY) {
  test(`${v}: ips[] carry "version", no 1.1-only fields`, () => {
    assert.deepEqual(serialiseResult(RESULT, v), {
      cniVersion: v,
      interfaces: [
        { name: 'testcni0', mac: '5e:47:95:62:ba:7e' },
        { name: 'tcd72e032fedd', mac: '1a:3a:6d:70:94:7a' },
        { name: 'eth0', mac: 'ca:cb:77:7d:34:8b', sandbox: '/var/run/netns/cni-1234' },
      ],
      ips: [
        { version: '4', address: '10.244.1.7/24', gateway: '10.244.1.1', interface: 2 },
        { version: '6', address: 'fd00::7/64', interface: 2 },
      ],
      routes: [
        { dst: '0.0.0.0/0', gw: '10.244.1.1' },
        { dst: '10.96.0.0/12', gw: '10.244.1.1' },
      ],
      dns: { nameservers: ['10.96.0.10'] },
    });
  });
}

test('1.0.0: no ips[].version, still no 1.1-only fields', () => {
  assert.deepEqual(serialiseResult(RESULT, '1.0.0'), {
    cniVersion: '1.0.0',
    interfaces: [
      { name: 'testcni0', mac: '5e:47:95:62:ba:7e' },
      { name: 'tcd72e032fedd', mac: '1a:3a:6d:70:94:7a' },
      { name: 'eth0', mac: 'ca:cb:77:7d:34:8b', sandbox: '/var/run/netns/cni-1234' },
    ],
    ips: [
      { address: '10.244.1.7/24', gateway: '10.244.1.1', interface: 2 },
      { address: 'fd00::7/64', interface: 2 },
    ],
    routes: [
      { dst: '0.0.0.0/0', gw: '10.244.1.1' },
      { dst: '10.96.0.0/12', gw: '10.244.1.1' },
    ],
    dns: { nameservers: ['10.96.0.10'] },
  });
});

test('1.1.0: keeps interfaces[].mtu and route mtu/advmss/priority/table/scope', () => {
  assert.deepEqual(serialiseResult(RESULT, '1.1.0'), {
    cniVersion: '1.1.0',
    interfaces: [
      { name: 'testcni0', mac: '5e:47:95:62:ba:7e' },
      { name: 'tcd72e032fedd', mac: '1a:3a:6d:70:94:7a', mtu: 1500 },
      { name: 'eth0', mac: 'ca:cb:77:7d:34:8b', mtu: 1450, sandbox: '/var/run/netns/cni-1234' },
    ],
    ips: [
      { address: '10.244.1.7/24', gateway: '10.244.1.1', interface: 2 },
      { address: 'fd00::7/64', interface: 2 },
    ],
    routes: [
      { dst: '0.0.0.0/0', gw: '10.244.1.1' },
      { dst: '10.96.0.0/12', gw: '10.244.1.1', mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 },
    ],
    dns: { nameservers: ['10.96.0.10'] },
  });
});

test('serialisation is stable JSON: fixed key order, same text twice', () => {
  for (const v of SUPPORTED_VERSIONS) {
    const text = JSON.stringify(serialiseResult(RESULT, v));
    assert.equal(JSON.stringify(serialiseResult(RESULT, v)), text);
    assert.deepEqual(Object.keys(JSON.parse(text)), ['cniVersion', 'interfaces', 'ips', 'routes', 'dns']);
  }
  assert.deepEqual(Object.keys((serialiseResult(RESULT, '0.4.0').ips as object[])[0]!), ['version', 'address', 'gateway', 'interface']);
});

test('serialising does not modify the internal result', () => {
  const before = structuredClone(RESULT);
  for (const v of SUPPORTED_VERSIONS) serialiseResult(RESULT, v);
  assert.deepEqual(RESULT, before);
});

test('parsePrevResult round trip: 1.1.0 reads back whole', () => {
  // through JSON, as a runtime caches and passes it
  const wire = JSON.parse(JSON.stringify(serialiseResult(RESULT, '1.1.0')));
  assert.deepEqual(parsePrevResult(wire), RESULT);
});

test('parsePrevResult round trip: older versions read back without what they cannot carry', () => {
  const without11: Result = {
    ...RESULT,
    interfaces: RESULT.interfaces.map(({ mtu: _mtu, ...rest }) => rest),
    routes: RESULT.routes.map(({ dst, gw }) => ({ dst, ...(gw ? { gw } : {}) })),
  };
  for (const v of [...LEGACY, '1.0.0'] as const) {
    const wire = JSON.parse(JSON.stringify(serialiseResult(RESULT, v)));
    const back = parsePrevResult(wire);
    assert.deepEqual(back, without11, v);
    // and serialising what was read gives the same wire document again
    assert.deepEqual(serialiseResult(back!, v), wire, v);
  }
});

test('parsePrevResult: null for no prevResult, tolerant of missing or odd fields', () => {
  assert.equal(parsePrevResult(null), null);
  assert.deepEqual(parsePrevResult({ cniVersion: '1.0.0' }), { interfaces: [], ips: [], routes: [], dns: {} });
  assert.deepEqual(
    parsePrevResult({ interfaces: 'x', ips: [{ address: '10.0.0.2/24', gateway: 7, interface: '0' }], routes: [{ dst: '0.0.0.0/0', mtu: '9000' }] }),
    { interfaces: [], ips: [{ address: '10.0.0.2/24' }], routes: [{ dst: '0.0.0.0/0' }], dns: {} },
  );
});

test('prevResult entries that are not objects: CHECK is told which, DEL reads past them', async () => {
  const { prevResultProblem } = await import('../../cni/result.ts');
  const raw = { cniVersion: '1.1.0', interfaces: [null, { name: 'eth0' }], ips: [7, { address: '10.0.0.2/24' }], routes: 'x' } as Record<string, unknown>;
  assert.equal(prevResultProblem(raw), 'prevResult.interfaces[0] must be an object, not null');
  const parsed = parsePrevResult(raw)!;
  assert.deepEqual(parsed.interfaces.map((i) => i.name), ['eth0']);
  assert.deepEqual(parsed.ips.map((i) => i.address), ['10.0.0.2/24']);
  assert.deepEqual(parsed.routes, []);
  assert.equal(parsePrevResult('x' as never), null);
});

test('a NUL byte anywhere in the config is found, with its field', async () => {
  const { nulField } = await import('../../cni/nul-bytes.ts');
  assert.equal(nulField({ a: 'x', ipam: { dataDir: '/a\u0000' } }), 'ipam.dataDir');
  assert.equal(nulField({ list: ['ok', 'b\u0000'] }), 'list[1]');
  assert.equal(nulField({ ['k\u0000']: 1 }), JSON.stringify('k\u0000'));
  assert.equal(nulField({ a: ['x', { b: 1 }] }), null);
  let deep: unknown = 'end\u0000';
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.equal(typeof nulField(deep), 'string', 'no stack overflow on deep nesting');
});
