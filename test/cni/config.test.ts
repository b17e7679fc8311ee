import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkConfig } from '../../model/config.ts';
import { loadConfig, parseJson } from '../../cni/config.ts';
import { DEFAULTS } from '../../schemas/network-config.ts';
import { CniError, Code } from '../../model/errors.ts';
import { poolOf, candidates, capacity } from '../../ipam/pool.ts';
import { formatIp } from '../../lib/ipv4.ts';

const BASE = { cniVersion: '1.1.0', name: 'net', type: 'testcni', subnet: '10.244.0.0/16' };

/** Asserts loadConfig refuses raw with `code`, naming `field` in both msg and details. */
function assertRefused(raw: unknown, code: number, field: string): void {
  assert.throws(
    () => loadConfig(raw),
    (e: unknown) => {
      assert.ok(e instanceof CniError, `expected a CniError, got ${String(e)}`);
      assert.equal(e.code, code, `${e.message} | ${e.details}`);
      assert.ok(e.message.includes(field), `msg ${JSON.stringify(e.message)} should name ${field}`);
      assert.ok(e.details.includes(field), `details ${JSON.stringify(e.details)} should name ${field}`);
      return true;
    },
    JSON.stringify(raw),
  );
}

const ORIGINAL_DEFAULTS = {
  mtu: null,
  ipMasq: false,
  uplink: null,
  stateDir: DEFAULTS.stateDir,
  logFile: null,
  logLevel: 'info',
};
const DEFAULT_IPAM = { type: 'file', dataDir: DEFAULTS.ipamDataDir, agentSocket: DEFAULTS.agentSocket, blockSize: 24 };

// The original system's host-gw file (original-system.md), byte for byte as its users wrote it.
// The other modes' files are tested with their modes (test/planner/modes/).
const ORIGINALS: [string, string, NetworkConfig][] = [
  [
    'host-gw with bridge',
    '{"cniVersion":"0.3.0","name":"testcni","type":"testcni","bridge":"testcni0","subnet":"10.244.0.0/16"}',
    {
      cniVersion: '0.3.0', name: 'testcni', type: 'testcni', mode: 'host-gw', subnet: '10.244.0.0/16', ...ORIGINAL_DEFAULTS,
      modeConfig: { bridge: 'testcni0' },
      ipam: { ...DEFAULT_IPAM, block: '10.244.0.0/24', rangeStart: '10.244.0.1', rangeEnd: '10.244.0.254', gateway: '10.244.0.1' },
    } as NetworkConfig,
  ],
];

for (const [what, text, expected] of ORIGINALS) {
  test(`original config accepted as it is: ${what}`, () => {
    const { config, extras } = loadConfig(parseJson(text));
    assert.deepEqual(config, expected);
    assert.deepEqual(extras, { prevResult: null, validAttachments: null });
  });
}

test('defaults: host-gw, bridge testcni0, first /24 of the subnet, gateway .1, range .1-.254', () => {
  const { config } = loadConfig({ ...BASE, subnet: '10.50.0.0/16' });
  assert.equal(config.mode, 'host-gw');
  assert.deepEqual(config.modeConfig, { bridge: 'testcni0' });
  assert.equal(config.stateDir, '/var/lib/testcni');
  assert.equal(config.logLevel, 'info');
  assert.deepEqual(config.ipam, {
    type: 'file', block: '10.50.0.0/24', rangeStart: '10.50.0.1', rangeEnd: '10.50.0.254', gateway: '10.50.0.1',
    dataDir: '/var/lib/cni/networks', agentSocket: '/run/testcni/agent.sock', blockSize: 24,
  });
});

test('the allocator never hands out the gateway that the default range includes', () => {
  const { config } = loadConfig(BASE);
  const pool = poolOf(config.ipam);
  const order = [...candidates(pool, null)].map(formatIp);
  assert.equal(order[0], '10.244.0.2');
  assert.equal(order.at(-1), '10.244.0.254');
  assert.ok(!order.includes('10.244.0.1'));
  assert.equal(order.length, 253);
  assert.equal(capacity(pool), 253);
});

test('a gateway outside the configured range costs no address', () => {
  const { config } = loadConfig({ ...BASE, ipam: { rangeStart: '10.244.0.10', rangeEnd: '10.244.0.19' } });
  assert.equal(config.ipam.gateway, '10.244.0.1');
  assert.equal(capacity(poolOf(config.ipam)), 10);
});

test('explicit values win over defaults', () => {
  const { config } = loadConfig({
    ...BASE, mode: 'host-gw', bridge: 'br-pods', mtu: 1400, ipMasq: true, stateDir: '/run/tc', logFile: '/var/log/tc.log', logLevel: 'debug',
    ipam: { type: 'file', block: '10.244.7.0/24', gateway: '10.244.7.254', rangeStart: '10.244.7.10', rangeEnd: '10.244.7.20', dataDir: '/run/ipam' },
  });
  assert.deepEqual(config.modeConfig, { bridge: 'br-pods' });
  assert.equal(config.mtu, 1400);
  assert.equal(config.ipMasq, true);
  assert.equal(config.stateDir, '/run/tc');
  assert.equal(config.logFile, '/var/log/tc.log');
  assert.equal(config.logLevel, 'debug');
  assert.deepEqual(
    { block: config.ipam.block, gateway: config.ipam.gateway, start: config.ipam.rangeStart, end: config.ipam.rangeEnd, dir: config.ipam.dataDir },
    { block: '10.244.7.0/24', gateway: '10.244.7.254', start: '10.244.7.10', end: '10.244.7.20', dir: '/run/ipam' },
  );
});

test('ipam.blockSize picks the block size; unset it never exceeds the subnet', () => {
  assert.equal(loadConfig({ ...BASE, ipam: { blockSize: 26 } }).config.ipam.block, '10.244.0.0/26');
  assert.equal(loadConfig({ ...BASE, ipam: { blockSize: 26 } }).config.ipam.rangeEnd, '10.244.0.62');
  // a subnet smaller than the default /24 is one block (no error about a field nobody wrote)
  assert.equal(loadConfig({ ...BASE, subnet: '10.244.0.0/25' }).config.ipam.block, '10.244.0.0/25');
  assertRefused({ ...BASE, subnet: '10.244.0.0/25', ipam: { blockSize: 24 } }, Code.InvalidConfig, 'ipam.blockSize');
});

test('a subnet without a prefix length is refused (only a mode that says what it means accepts one)', () => {
  assertRefused({ ...BASE, subnet: '10.244.0.0' }, Code.InvalidConfig, 'subnet');
});

test('prevResult and the GC attachment lists (both spellings) come back as extras', () => {
  const prev = { cniVersion: '1.1.0', interfaces: [], ips: [], routes: [], dns: {} };
  const list = [{ containerID: 'c1', ifname: 'eth0' }];
  assert.deepEqual(loadConfig({ ...BASE, prevResult: prev }).extras.prevResult, prev);
  assert.deepEqual(loadConfig({ ...BASE, 'cni.dev/valid-attachments': list }).extras.validAttachments, list);
  assert.deepEqual(loadConfig({ ...BASE, 'cni.dev/attachments': list }).extras.validAttachments, list);
});

// Semantic errors a schema cannot see: code 7 naming the field.
const SEMANTIC: [string, Record<string, unknown>, string][] = [
  ['block outside the subnet', { ipam: { block: '10.245.0.0/24' } }, 'ipam.block'],
  ['block larger than the subnet', { ipam: { block: '10.0.0.0/8' } }, 'ipam.block'],
  ['block too small for pods', { ipam: { block: '10.244.0.0/31' } }, 'ipam.block'],
  ['block not a CIDR', { ipam: { block: '10.244.0.0' } }, 'ipam.block'],
  ['rangeStart outside the block', { ipam: { rangeStart: '10.244.1.5' } }, 'ipam.rangeStart'],
  ['rangeStart outside the subnet', { ipam: { rangeStart: '192.168.0.5' } }, 'ipam.rangeStart'],
  ['rangeEnd outside the block', { ipam: { rangeEnd: '10.244.3.5' } }, 'ipam.rangeEnd'],
  ['rangeStart after rangeEnd', { ipam: { rangeStart: '10.244.0.50', rangeEnd: '10.244.0.40' } }, 'ipam.rangeStart'],
  ['rangeStart is the network address', { ipam: { rangeStart: '10.244.0.0' } }, 'ipam.rangeStart'],
  ['rangeEnd is the broadcast address', { ipam: { rangeEnd: '10.244.0.255' } }, 'ipam.rangeEnd'],
  ['rangeStart not an address', { ipam: { rangeStart: '10.244.0.300' } }, 'ipam.rangeStart'],
  ['rangeEnd not an address', { ipam: { rangeEnd: 'ten' } }, 'ipam.rangeEnd'],
  ['gateway outside the block', { ipam: { gateway: '10.244.9.1' } }, 'ipam.gateway'],
  ['gateway not an address', { ipam: { gateway: '10.244.0.1/24' } }, 'ipam.gateway'],
  ['subnet without prefix (host-gw)', { subnet: '10.244.0.0' }, 'subnet'],
  ['subnet with prefix > 32', { subnet: '10.244.0.0/33' }, 'subnet'],
  ['subnet with a bad octet', { subnet: '10.256.0.0/16' }, 'subnet'],
  ['subnet missing', { subnet: undefined }, 'subnet'],
  ['blockSize larger than the subnet', { subnet: '10.244.0.0/16', ipam: { blockSize: 12 } }, 'ipam.blockSize'],
  ['cniVersion missing', { cniVersion: undefined }, 'cniVersion'],
];
for (const [what, change, field] of SEMANTIC) {
  test(`semantic error -> code 7 naming ${field}: ${what}`, () => {
    const raw = Object.fromEntries(Object.entries({ ...BASE, ...change }).filter(([, v]) => v !== undefined));
    assertRefused(raw, Code.InvalidConfig, field);
  });
}

test('unknown keys: inside ipam, at the top, or belonging to another mode -> code 2 naming the key', () => {
  assertRefused({ ...BASE, ipam: { rangeStart: '10.244.0.10', subnet: '10.244.0.0/24' } }, Code.UnsupportedField, 'ipam.subnet');
  assertRefused({ ...BASE, ipam: { type: 'file', ranges: [] } }, Code.UnsupportedField, 'ipam.ranges');
  assertRefused({ ...BASE, bridgeName: 'br0' }, Code.UnsupportedField, 'bridgeName');
  assertRefused({ ...BASE, vni: 13190 }, Code.UnsupportedField, 'vni');
});

test('an unknown mode is code 7 naming mode, with the modes that exist', () => {
  assertRefused({ ...BASE, mode: 'flannel' }, Code.InvalidConfig, 'mode');
  assert.throws(() => loadConfig({ ...BASE, mode: 'flannel' }), (e: unknown) => /host-gw/.test((e as CniError).details));
});

test('wrong types and values -> code 7 naming the field', () => {
  const rows: [Record<string, unknown>, string][] = [
    [{ mtu: '1500' }, 'mtu'],
    [{ mtu: 1500.5 }, 'mtu'],
    [{ mtu: 100 }, 'mtu'],
    [{ ipMasq: 'true' }, 'ipMasq'],
    [{ mode: 'bgp' }, 'mode'],
    [{ name: 'bad name' }, 'name'],
    [{ name: 42 }, 'name'],
    [{ subnet: 10 }, 'subnet'],
    [{ ipam: 'file' }, 'ipam'],
    [{ ipam: { blockSize: '24' } }, 'ipam.blockSize'],
    [{ ipam: { type: 'host-local' } }, 'ipam.type'],
    [{ ipam: { dataDir: 'relative/dir' } }, 'ipam.dataDir'],
    [{ stateDir: 'var/lib' }, 'stateDir'],
    [{ bridge: 'br/0' }, 'bridge'],
    [{ bridge: 'a-very-long-bridge' }, 'bridge'],
    [{ logLevel: 'trace' }, 'logLevel'],
  ];
  for (const [change, field] of rows) assertRefused({ ...BASE, ...change }, Code.InvalidConfig, field);
});

test('a wrong value is reported before an unknown key', () => {
  assertRefused({ ...BASE, mtu: 'x', bogus: 1 }, Code.InvalidConfig, 'mtu');
});

test('version comes first: unsupported cniVersion is code 1 even with other errors', () => {
  for (const v of ['0.2.0', '1.2.0', '1.1']) {
    assert.throws(() => loadConfig({ ...BASE, cniVersion: v, mtu: 'x', bogus: 1 }), (e: unknown) => e instanceof CniError && e.code === Code.IncompatibleVersion);
  }
});

test('stdin that is not a JSON object: code 6', () => {
  for (const text of ['', 'not json', '{"cniVersion":', '{} trailing']) {
    assert.throws(() => parseJson(text), (e: unknown) => e instanceof CniError && e.code === Code.DecodeFailure, text);
  }
  for (const raw of [null, [], [BASE], 'x', 7, true]) {
    assert.throws(() => loadConfig(raw), (e: unknown) => e instanceof CniError && e.code === Code.DecodeFailure, JSON.stringify(raw));
  }
});

test('interface names in the config are limited to 15 bytes, not characters', () => {
  assert.throws(() => loadConfig({ cniVersion: '1.1.0', name: 'n', type: 'testcni', subnet: '10.244.0.0/16', bridge: 'é'.repeat(8) }),
    (e: unknown) => (e as { code?: number }).code === 7 && /bridge/.test((e as Error).message));
  assert.doesNotThrow(() => loadConfig({ cniVersion: '1.1.0', name: 'n', type: 'testcni', subnet: '10.244.0.0/16', bridge: 'é'.repeat(7) }));
});
