// Late-bound ifindexes (model/plan.ts ifindexToken) on a fake node: a bpftool unit gets the
// links' indexes in place of the tokens, read once per unit (in-process when sysfs is the
// node's, else one `ip -j link show`); a link that is not there fails its step; a probe gets
// them in its argv and its expected text; renderers show the token and a shell expression.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HOST, ifindexToken, type Step, type Plan } from '../../model/plan.ts';
import { MECHANISMS } from '../../executor/mechanisms/index.ts';
import { runProbe } from '../../executor/probe.ts';
import { ifindexHex, bindArgv, bindText } from '../../executor/ifindex.ts';
import { renderPlan, operationText } from '../../planner/render.ts';
import { FakeRunner, FakeSystem, FAKE_FACTS } from '../helpers/fake-node.ts';

const BPFTOOL = '/usr/sbin/bpftool';
const update = (id: string, dev: string, key: string): Step => ({
  id, kind: 'bpf.map.update', scope: 'pod', ns: HOST, mech: 'bpftool', ifindexOf: [dev], idempotent: true, undo: null, probe: null, describe: id,
  argv: [BPFTOOL, 'map', 'update', 'pinned', '/p/m', 'key', 'hex', key, '00', '00', '00', 'value', 'hex', ifindexToken(dev), 'aa'],
});
const links = JSON.stringify([{ ifname: 'lo', ifindex: 1 }, { ifname: 'tcaaa', ifindex: 300 }, { ifname: 'vx', ifindex: 5 }]);

test('bytes of an ifindex: a u32 in host (little-endian) order', () => {
  assert.deepEqual(ifindexHex(300), ['2c', '01', '00', '00']);
  assert.deepEqual(bindArgv(['a', ifindexToken('x'), 'b'], new Map([['x', 258]])), ['a', '02', '01', '00', '00', 'b']);
  assert.equal(bindText(`{"value":["${ifindexToken('x')}","0xaa"]}`, new Map([['x', 1]])), '{"value":["0x01","0x00","0x00","0x00","0xaa"]}');
});

test('a bpftool unit: the links of every step read in one process (a simulated node), then one batch with the bytes in place', async () => {
  const runner = new FakeRunner().on((c) => (c.argv.includes('link') ? { stdout: links } : undefined));
  const out = await MECHANISMS.bpftool.run([update('a', 'tcaaa', '01'), update('b', 'vx', '02')], HOST, { runner, facts: FAKE_FACTS, sys: new FakeSystem() }, { force: false });
  assert.deepEqual(runner.calls.map((c) => c.argv), [['/usr/sbin/ip', '-j', 'link', 'show'], [BPFTOOL, '-j', 'batch', 'file', '-']]);
  assert.equal(runner.calls[1]!.input, 'map update pinned /p/m key hex 01 00 00 00 value hex 2c 01 00 00 aa\nmap update pinned /p/m key hex 02 00 00 00 value hex 05 00 00 00 aa\n');
  assert.deepEqual([...out.values()].map((o) => o.status), ['applied', 'applied']);
});

test('on a node whose sysfs is its own, the indexes come from it: no process but the batch', async () => {
  const sys = new FakeSystem();
  sys.indexes.set('tcaaa', 300);
  const runner = new FakeRunner();
  await MECHANISMS.bpftool.run([update('a', 'tcaaa', '01')], HOST, { runner, facts: FAKE_FACTS, sys }, { force: false });
  assert.deepEqual(runner.calls.map((c) => c.argv[0]), [BPFTOOL]);
});

test('a link that is not there: the steps before it run, its own fails naming the link, the rest only when forced', async () => {
  const runner = new FakeRunner().on((c) => (c.argv.includes('link') ? { stdout: links } : undefined));
  const unit = [update('a', 'tcaaa', '01'), update('b', 'gone', '02'), update('c', 'vx', '03')];
  const out = await MECHANISMS.bpftool.run(unit, HOST, { runner, facts: FAKE_FACTS, sys: new FakeSystem() }, { force: false });
  assert.deepEqual([...out.entries()].map(([id, o]) => [id, o.status]), [['a', 'applied'], ['b', 'failed']]);
  assert.match(out.get('b')!.stderr!, /link gone does not exist/);
  const forced = await MECHANISMS.bpftool.run(unit, HOST, { runner, facts: FAKE_FACTS, sys: new FakeSystem() }, { force: true });
  assert.deepEqual([...forced.entries()].map(([id, o]) => [id, o.status]), [['a', 'applied'], ['b', 'failed'], ['c', 'applied']]);
});

test('bpftool failing on its own after every command succeeded: what ran is unknown (the probe decides)', async () => {
  const runner = new FakeRunner().on(() => ({ exitCode: 255, stdout: JSON.stringify([{ command: ['prog', 'loadall'], output: null }, { error: 'reading batch file failed: File exists' }]) }));
  const s: Step = { id: 'a', kind: 'bpf.load', scope: 'node', ns: HOST, mech: 'bpftool', idempotent: false, undo: null, probe: null, describe: 'load', argv: [BPFTOOL, 'prog', 'loadall', '/o', '/d'] };
  const out = await MECHANISMS.bpftool.run([s], HOST, { runner, facts: FAKE_FACTS, sys: new FakeSystem() }, { force: false });
  assert.equal(out.get('a')!.status, 'unknown');
});

test('a probe with a late-bound ifindex: compared with the bytes in place; a link that is gone means not in effect', async () => {
  const probe = { ns: HOST, mech: 'exec' as const, argv: [BPFTOOL, '-j', 'map', 'lookup', 'pinned', '/p/m', 'key', 'hex', '01'], ifindexOf: ['tcaaa'], expect: { $text: `{"value":["${ifindexToken('tcaaa')}","0xaa"]}` } };
  const answer = (v: string) => new FakeRunner().on((c) => (c.argv.includes('link') ? { stdout: links } : { stdout: `{"value":${v}}` }));
  assert.equal(await runProbe(probe, FAKE_FACTS, answer('["0x2c","0x01","0x00","0x00","0xaa"]'), new FakeSystem()), true);
  assert.equal(await runProbe(probe, FAKE_FACTS, answer('["0x05","0x00","0x00","0x00","0xaa"]'), new FakeSystem()), false, 'a stale ifindex is drift');
  const gone = { ...probe, ifindexOf: ['nope'], expect: { $text: `{"value":["${ifindexToken('nope')}"]}` } };
  assert.equal(await runProbe(gone, FAKE_FACTS, answer('[]'), new FakeSystem()), false);
  assert.equal(await runProbe({ ...gone, expect: { $not: gone.expect } }, FAKE_FACTS, answer('[]'), new FakeSystem()), true, 'its undo counts as done');
});

test('renderers: the token for a person; a shell function and an expression in a script', () => {
  const s = update('bpf.map.update:host:m:1', 'tcaaa', '01');
  assert.equal(operationText(s), `${BPFTOOL} map update pinned /p/m key hex 01 00 00 00 value hex ifindex(tcaaa) aa`);
  const plan: Plan = { command: 'ADD', network: 'n', containerId: 'c', ifName: 'eth0', netns: '/p', mode: 'vxlan', inputsDigest: 'x', steps: [s], result: null };
  const sh = renderPlan(plan, 'sh', FAKE_FACTS);
  assert.match(sh, /^ifindex_hex\(\) \{ l=\$\(\/usr\/sbin\/ip -o link show dev "\$1"\)/m);
  assert.ok(sh.includes('value hex $(ifindex_hex tcaaa) aa'), sh);
});
