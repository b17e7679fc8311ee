import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfigShape } from '../../schemas/validate.ts';
import { MODES } from '../../planner/registry.ts';
import { CniError, Code } from '../../model/errors.ts';

const BASE = { cniVersion: '1.1.0', name: 'net', type: 'testcni', subnet: '10.244.0.0/16' };
const att = [{ containerID: 'c1', ifname: 'eth0' }];

// [description, config, expected]: 'ok', or [code, the field named first in msg].
type Row = [string, Record<string, unknown>, 'ok' | [number, string]];
const OK = 'ok' as const;
const bad = (field: string): [number, string] => [Code.InvalidConfig, field];
const unknown = (field: string): [number, string] => [Code.UnsupportedField, field];

const ROWS: Row[] = [
  // accepted
  ['minimal', BASE, OK],
  ['original host-gw', { cniVersion: '0.3.0', name: 'testcni', type: 'testcni', bridge: 'testcni0', subnet: '10.244.0.0/16' }, OK],
  ['every common field', {
    ...BASE, cniVersions: ['1.0.0', '1.1.0'], mode: 'host-gw', mtu: 1450, ipMasq: true, uplink: 'eth0', stateDir: '/var/lib/testcni',
    logFile: '/var/log/testcni.log', logLevel: 'warn', dns: {}, args: {}, runtimeConfig: {}, capabilities: {}, prevResult: {},
    disableCheck: false, disableGC: false, 'cni.dev/valid-attachments': att, 'cni.dev/attachments': att,
  }, OK],
  ['every ipam field', { ...BASE, ipam: { type: 'cluster', block: '10.244.1.0/24', blockSize: 24, rangeStart: 'a', rangeEnd: 'b', gateway: 'c', dataDir: '/d', agentSocket: '/s' } }, OK],
  ['mtu bounds', { ...BASE, mtu: 576 }, OK],
  ['mtu upper bound', { ...BASE, mtu: 65535 }, OK],
  ['bridge in explicit host-gw', { ...BASE, mode: 'host-gw', bridge: 'br0' }, OK],
  ['15-char bridge', { ...BASE, bridge: 'b'.repeat(15) }, OK],
  ['semantics are not the schema\'s job', { ...BASE, ipam: { rangeStart: '1.2.3.4', rangeEnd: '1.2.3.3' } }, OK],

  // wrong values: code 7
  ['cniVersion missing', { name: 'n', type: 't', subnet: BASE.subnet }, bad('cniVersion')],
  ['name missing', { cniVersion: '1.1.0', type: 't' }, bad('name')],
  ['type missing', { cniVersion: '1.1.0', name: 'n' }, bad('type')],
  ['type empty', { ...BASE, type: '' }, bad('type')],
  ['cniVersion not a string', { ...BASE, cniVersion: 1.1 }, bad('cniVersion')],
  ['name with a space', { ...BASE, name: 'my net' }, bad('name')],
  ['name with a slash', { ...BASE, name: 'a/b' }, bad('name')],
  ['name starting with a dot', { ...BASE, name: '.net' }, bad('name')],
  ['name too long', { ...BASE, name: 'n'.repeat(201) }, bad('name')],
  ['unknown mode', { ...BASE, mode: 'flannel' }, bad('mode')],
  ['subnet not a string', { ...BASE, subnet: ['10.244.0.0/16'] }, bad('subnet')],
  ['subnet too short', { ...BASE, subnet: '1.2.3' }, bad('subnet')],
  ['subnet too long', { ...BASE, subnet: '100.100.100.100/166' }, bad('subnet')],
  ['mtu string', { ...BASE, mtu: '1500' }, bad('mtu')],
  ['mtu float', { ...BASE, mtu: 1500.5 }, bad('mtu')],
  ['mtu too small', { ...BASE, mtu: 575 }, bad('mtu')],
  ['mtu too large', { ...BASE, mtu: 65536 }, bad('mtu')],
  ['ipMasq string', { ...BASE, ipMasq: 'yes' }, bad('ipMasq')],
  ['ipMasq number', { ...BASE, ipMasq: 1 }, bad('ipMasq')],
  ['uplink with a colon', { ...BASE, uplink: 'eth0:1' }, bad('uplink')],
  ['uplink "."', { ...BASE, uplink: '.' }, bad('uplink')],
  ['uplink ".."', { ...BASE, uplink: '..' }, bad('uplink')],
  ['uplink too long', { ...BASE, uplink: 'u'.repeat(16) }, bad('uplink')],
  ['stateDir relative', { ...BASE, stateDir: 'state' }, bad('stateDir')],
  ['logFile relative', { ...BASE, logFile: 'log.txt' }, bad('logFile')],
  ['logLevel unknown', { ...BASE, logLevel: 'verbose' }, bad('logLevel')],
  ['prevResult not an object', { ...BASE, prevResult: 'x' }, bad('prevResult')],
  ['attachments not an array', { ...BASE, 'cni.dev/valid-attachments': {} }, bad('cni.dev/valid-attachments')],
  ['attachment without ifname', { ...BASE, 'cni.dev/valid-attachments': [{ containerID: 'c1' }] }, bad('cni.dev/valid-attachments.0.ifname')],
  ['ipam not an object', { ...BASE, ipam: [] }, bad('ipam')],
  ['ipam.type unknown', { ...BASE, ipam: { type: 'host-local' } }, bad('ipam.type')],
  ['ipam.blockSize string', { ...BASE, ipam: { blockSize: '24' } }, bad('ipam.blockSize')],
  ['ipam.blockSize too small', { ...BASE, ipam: { blockSize: 7 } }, bad('ipam.blockSize')],
  ['ipam.blockSize too large', { ...BASE, ipam: { blockSize: 31 } }, bad('ipam.blockSize')],
  ['ipam.rangeStart number', { ...BASE, ipam: { rangeStart: 10 } }, bad('ipam.rangeStart')],
  ['ipam.dataDir relative', { ...BASE, ipam: { dataDir: 'ipam' } }, bad('ipam.dataDir')],
  ['bridge with a semicolon', { ...BASE, bridge: 'br;0' }, bad('bridge')],
  ['bridge too long', { ...BASE, bridge: 'b'.repeat(16) }, bad('bridge')],
  ['bridge "."', { ...BASE, bridge: '.' }, bad('bridge')],
  ['wrong value beats unknown key', { ...BASE, mtu: 'x', zzz: 1 }, bad('mtu')],

  // unknown keys: code 2
  ['unknown top-level key', { ...BASE, subnets: ['10.244.0.0/16'] }, unknown('subnets')],
  ['unknown ipam key', { ...BASE, ipam: { ranges: [] } }, unknown('ipam.ranges')],
  ['unknown ipam key beside valid ones', { ...BASE, ipam: { rangeStart: '10.244.0.5', routes: [] } }, unknown('ipam.routes')],
  ['vni in host-gw (default)', { ...BASE, vni: 1 }, unknown('vni')],
  ['master in host-gw', { ...BASE, master: 'eth0' }, unknown('master')],
];

for (const [what, config, expected] of ROWS) {
  test(`checkConfigShape: ${what} -> ${expected === OK ? 'accepted' : `code ${expected[0]} ${expected[1]}`}`, () => {
    if (expected === OK) {
      assert.doesNotThrow(() => checkConfigShape(config, MODES));
      return;
    }
    const [code, field] = expected;
    assert.throws(
      () => checkConfigShape(config, MODES),
      (e: unknown) => {
        assert.ok(e instanceof CniError, String(e));
        assert.equal(e.code, code, `${e.message} | ${e.details}`);
        assert.ok(e.message.endsWith(`: ${field}`), `msg ${JSON.stringify(e.message)} should name ${field}`);
        assert.ok(e.details.includes(field), `details ${JSON.stringify(e.details)} should name ${field}`);
        return true;
      },
    );
  });
}

test('every unknown key is listed in the details', () => {
  assert.throws(
    () => checkConfigShape({ ...BASE, aaa: 1, bbb: 2, ipam: { ccc: 3 } }, MODES),
    (e: unknown) => e instanceof CniError && e.code === Code.UnsupportedField && ['aaa', 'bbb', 'ipam.ccc'].every((k) => e.details.includes(k)),
  );
});

test('every wrong value is listed in the details, enum errors with the allowed values', () => {
  assert.throws(
    () => checkConfigShape({ ...BASE, mtu: 'x', mode: 'bgp' }, MODES),
    (e: unknown) =>
      e instanceof CniError && e.code === Code.InvalidConfig && e.details.includes('mtu') &&
      e.details.includes('mode') && e.details.includes(MODES.names().join(', ')),
  );
});

test('non-objects are refused with code 7', () => {
  for (const v of [null, [], 'x', 1]) {
    assert.throws(() => checkConfigShape(v, MODES), (e: unknown) => e instanceof CniError && e.code === Code.InvalidConfig, JSON.stringify(v));
  }
});
