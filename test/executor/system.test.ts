// The executor's in-process node view: sysctl paths, and sysctls rerooted at a mount of the
// node's /proc/sys (the agent in a container, whose own /proc/sys is read-only); path queries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { realSystem, sysctlPath, systemWithProcSys, parseProcArp } from '../../executor/system.ts';

test('sysctlPath: dots are directories, a slash in a component stands for a dot in a name', () => {
  assert.equal(sysctlPath('net.ipv4.conf.eth0.forwarding'), '/proc/sys/net/ipv4/conf/eth0/forwarding');
  assert.equal(sysctlPath('net.ipv4.conf.eth0/100.forwarding'), '/proc/sys/net/ipv4/conf/eth0.100/forwarding');
});

test('systemWithProcSys: sysctls read and written under another root; /proc/sys is the real system', (t) => {
  assert.equal(systemWithProcSys('/proc/sys'), realSystem);
  const root = mkdtempSync(join(tmpdir(), 'tcprocsys-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'net', 'ipv4', 'conf', 'eth0.100'), { recursive: true });
  writeFileSync(join(root, 'net', 'ipv4', 'conf', 'eth0.100', 'forwarding'), '0\n');
  const sys = systemWithProcSys(root);
  assert.equal(sys.readSysctl('net.ipv4.conf.eth0/100.forwarding'), '0\n');
  sys.writeSysctl('net.ipv4.conf.eth0/100.forwarding', '1');
  assert.equal(readFileSync(join(root, 'net', 'ipv4', 'conf', 'eth0.100', 'forwarding'), 'utf8'), '1');
  assert.equal(sys.readSysctl('net.ipv4.no_such_key'), null);
  assert.equal(sys.linkNames, realSystem.linkNames, 'everything else is the real system');
});

test('statPath: what is at a path; a directory lists its files two levels deep only when asked', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'tcstat-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'maps'));
  mkdirSync(join(root, 'progs-ab', 'deeper'), { recursive: true });
  for (const f of ['maps/testcni_eps', 'progs-ab/tcni_to_vxlan', 'progs-ab/tcni_from_pod', 'progs-ab/deeper/too-deep', 'top']) writeFileSync(join(root, f), '');
  assert.deepEqual(Object.keys(realSystem.statPath(root)!).sort(), ['fs', 'type'], 'no listing unless asked');
  const listed = realSystem.statPath(root, true)!;
  assert.equal(listed.type, 'directory');
  assert.deepEqual(listed.files, ['maps/testcni_eps', 'progs-ab/tcni_from_pod', 'progs-ab/tcni_to_vxlan', 'top']);
  assert.deepEqual(realSystem.statPath(join(root, 'top'), true), { type: 'file', fs: listed.fs });
  assert.equal(realSystem.statPath(join(root, 'absent'), true), null);
});

test('parseProcArp: a device\'s complete entries from /proc/net/arp, permanent ones marked; incomplete ones skipped', () => {
  const text = [
    'IP address       HW type     Flags       HW address            Mask     Device',
    '10.244.0.5       0x1         0x6         ae:30:01:22:c7:d5     *        testcni0',
    '10.244.0.6       0x1         0x2         b2:8d:fd:42:96:ec     *        testcni0',
    '10.244.0.7       0x1         0x0         00:00:00:00:00:00     *        testcni0',
    '198.18.0.1       0x1         0x2         56:79:aa:12:03:3a     *        eth0',
    '',
  ].join('\n');
  assert.deepEqual(parseProcArp(text, 'testcni0'), [
    { dst: '10.244.0.5', lladdr: 'ae:30:01:22:c7:d5', state: ['PERMANENT'] },
    { dst: '10.244.0.6', lladdr: 'b2:8d:fd:42:96:ec', state: [] },
  ]);
  assert.deepEqual(parseProcArp(text, 'nope'), []);
});
