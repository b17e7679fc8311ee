// Each mechanism on a fake node: the processes it starts for a unit, and how a failure inside a
// batch maps back to its step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HOST, argvOf, type Step } from '../../model/plan.ts';
import { MECHANISMS } from '../../executor/mechanisms/index.ts';
import { failedBatchLines } from '../../executor/mechanisms/iproute.ts';
import { fastProbe, runProbe } from '../../executor/probe.ts';
import { FakeRunner, FakeSystem, FAKE_FACTS, batchFailure } from '../helpers/fake-node.ts';

const POD = '/var/run/netns/fake-pod';
const base = { kind: 'link.add' as const, scope: 'pod' as const, idempotent: false, undo: null, probe: null };

function steps(mech: 'tc' | 'bpftool', lines: string[][]): Step[] {
  const prog = mech === 'tc' ? '/usr/sbin/tc' : '/usr/sbin/bpftool';
  return lines.map((args, i) => ({ ...base, id: `s${i + 1}`, ns: HOST, mech, argv: [prog, ...args], describe: `step ${i + 1}` }));
}

const ctx = (runner: FakeRunner, sys = new FakeSystem()) => ({ runner, facts: FAKE_FACTS, sys });

test('failedBatchLines reads iproute2\'s "Command failed -:N" lines', () => {
  assert.deepEqual(failedBatchLines('RTNETLINK answers: File exists\nCommand failed -:2\nx\nCommand failed -:5\n'), [2, 5]);
  assert.deepEqual(failedBatchLines('something else'), []);
});

test('tc: one `tc -batch -` per unit; a failed line fails its step, the lines after it never ran', async () => {
  const unit = steps('tc', [['qdisc', 'add', 'dev', 'a', 'clsact'], ['filter', 'add', 'dev', 'a', 'ingress', 'bpf', 'da', 'pinned', '/p'], ['qdisc', 'add', 'dev', 'b', 'clsact']]);
  const runner = new FakeRunner().on(() => batchFailure(2, 'Error: no such file'));
  const out = await MECHANISMS.tc.run(unit, HOST, ctx(runner), { force: false });
  assert.deepEqual(runner.calls[0]!.argv, ['/usr/sbin/tc', '-batch', '-']);
  assert.equal(runner.calls[0]!.input, 'qdisc add dev a clsact\nfilter add dev a ingress bpf da pinned /p\nqdisc add dev b clsact\n');
  assert.deepEqual([...out.entries()].map(([id, o]) => [id, o.status]), [['s1', 'applied'], ['s2', 'failed']]);
  assert.deepEqual(out.get('s2')!.argv, argvOf(unit[1]!));
});

test('tc forced: every line runs (-force) and each failure is its own', async () => {
  const unit = steps('tc', [['qdisc', 'del', 'dev', 'a', 'clsact'], ['qdisc', 'del', 'dev', 'b', 'clsact']]);
  const runner = new FakeRunner().on(() => batchFailure(1));
  const out = await MECHANISMS.tc.run(unit, POD, ctx(runner), { force: true });
  assert.deepEqual(runner.calls[0]!.argv, ['/usr/bin/nsenter', `--net=${POD}`, '--', '/usr/sbin/tc', '-force', '-batch', '-']);
  assert.deepEqual([...out.values()].map((o) => o.status), ['failed', 'applied']);
});

test('bpftool: one `bpftool -j batch file -`; the failing command is the last one in its JSON output', async () => {
  const unit = steps('bpftool', [['map', 'update', 'pinned', '/m', 'key', '1'], ['map', 'update', 'pinned', '/m', 'key', '2'], ['map', 'update', 'pinned', '/m', 'key', '3']]);
  const runner = new FakeRunner().on(() => ({ exitCode: 255, stdout: JSON.stringify([{ command: ['a'], output: null }, { command: ['b'], output: { error: 'full' } }]) }));
  const out = await MECHANISMS.bpftool.run(unit, HOST, ctx(runner), { force: false });
  assert.deepEqual(runner.calls[0]!.argv, ['/usr/sbin/bpftool', '-j', 'batch', 'file', '-']);
  assert.deepEqual([...out.entries()].map(([id, o]) => [id, o.status]), [['s1', 'applied'], ['s2', 'failed']]);
  assert.match(out.get('s2')!.stderr!, /full/);
  assert.equal(runner.calls.length, 1, 'not forced: it stops there');
});

test('bpftool forced: after a failure the rest runs in a new batch (bpftool has no -force)', async () => {
  const unit = steps('bpftool', [['map', 'delete', 'pinned', '/m', 'key', '1'], ['map', 'delete', 'pinned', '/m', 'key', '2'], ['map', 'delete', 'pinned', '/m', 'key', '3']]);
  const runner = new FakeRunner().on((c) => (c.input.startsWith('map delete pinned /m key 1')
    ? { exitCode: 255, stdout: JSON.stringify([{ output: { error: 'gone' } }]) } : undefined));
  const out = await MECHANISMS.bpftool.run(unit, HOST, ctx(runner), { force: true });
  assert.equal(runner.calls.length, 2);
  assert.equal(runner.calls[1]!.input, 'map delete pinned /m key 2\nmap delete pinned /m key 3\n');
  assert.deepEqual([...out.values()].map((o) => o.status), ['failed', 'applied', 'applied']);
});

test('sysctl: in the node\'s namespace written in-process; in a pod one process for the unit', async () => {
  const mk = (ns: string, key: string, value: string): Step => ({ ...base, kind: 'sysctl.set', id: key, ns, mech: 'sysctl', key, value,
    argv: ['/usr/sbin/sysctl', '-q', '-e', '-w', `${key}=${value}`], describe: key });
  const sys = new FakeSystem();
  const runner = new FakeRunner();
  const host = await MECHANISMS.sysctl.run([mk(HOST, 'net.ipv4.ip_forward', '1')], HOST, ctx(runner, sys), { force: false });
  assert.equal(host.get('net.ipv4.ip_forward')!.status, 'applied');
  assert.equal(sys.sysctls.get('net.ipv4.ip_forward'), '1');
  assert.equal(runner.calls.length, 0);
  await MECHANISMS.sysctl.run([mk(POD, 'a.b', '0'), mk(POD, 'c.d', '1')], POD, ctx(runner, sys), { force: false });
  assert.deepEqual(runner.calls[0]!.argv, ['/usr/bin/nsenter', `--net=${POD}`, '--', '/usr/sbin/sysctl', '-q', '-e', '-w', 'a.b=0', 'c.d=1']);
});

test('file: written in-process in the node\'s namespace with its mode, and probed by content', async () => {
  const step: Step = { ...base, kind: 'file.write', id: 'f', ns: HOST, mech: 'file', path: '/etc/x.conf', content: 'a = 1;\n', mode: 0o600,
    describe: 'x.conf', probe: { ns: HOST, mech: 'file', path: '/etc/x.conf', expect: { $text: 'a = 1;' } } };
  const sys = new FakeSystem();
  const runner = new FakeRunner();
  assert.equal(await runProbe(step.probe!, FAKE_FACTS, runner, sys), false, 'missing file: not in effect');
  const out = await MECHANISMS.file.run([step], HOST, ctx(runner, sys), { force: false });
  assert.equal(out.get('f')!.status, 'applied');
  assert.deepEqual(sys.files.get('/etc/x.conf'), { content: 'a = 1;\n', mode: 0o600 });
  assert.equal(await runProbe(step.probe!, FAKE_FACTS, runner, sys), true);
  sys.files.set('/etc/x.conf', { content: 'a = 2;\n', mode: 0o600 });
  assert.equal(await runProbe(step.probe!, FAKE_FACTS, runner, sys), false, 'other content: not in effect');
  assert.equal(runner.calls.length, 0, 'no process');
  const inPod = await MECHANISMS.file.run([{ ...step, ns: POD }], POD, ctx(runner, sys), { force: false });
  assert.equal(inPod.get('f')!.status, 'failed', 'a pod namespace has no files of its own');
});

test('exec: one process per step, in its namespace', async () => {
  const mk = (id: string): Step => ({ ...base, kind: 'iptables.rule', id, ns: POD, mech: 'exec', argv: ['/usr/sbin/iptables', '-A', id], describe: id });
  const runner = new FakeRunner().on((c) => (c.argv.includes('b') ? { exitCode: 2, stderr: 'no chain' } : undefined));
  const out = await MECHANISMS.exec.run([mk('a'), mk('b')], POD, ctx(runner), { force: true });
  assert.equal(runner.calls.length, 2);
  assert.deepEqual([...out.values()].map((o) => o.status), ['applied', 'failed']);
  assert.equal(out.get('b')!.exitCode, 2);
});

test('fast probes: link names and sysctls of the node\'s namespace need no process; a pod\'s do', () => {
  const sys = new FakeSystem(['lo', 'br0']);
  sys.sysctls.set('net.ipv4.ip_forward', '1\n');
  const links = fastProbe({ ns: HOST, mech: 'links', argv: ['/usr/sbin/ip', '-j', 'link', 'show'], expect: { $some: { ifname: 'br0' } } }, sys);
  assert.deepEqual(links?.json, [{ ifname: 'lo' }, { ifname: 'br0' }]);
  assert.equal(fastProbe({ ns: HOST, mech: 'sysctl', key: 'net.ipv4.ip_forward', argv: [], expect: { $text: '1' } }, sys)?.stdout, '1\n');
  assert.equal(fastProbe({ ns: POD, mech: 'links', argv: [], expect: { $exit: 0 } }, sys), null);
  assert.equal(fastProbe({ ns: HOST, mech: 'exec', argv: ['/usr/sbin/ip', '-j', 'route'], expect: { $exit: 0 } }, sys), null);
});

test('wait: polls until every link is up; on a node from sysfs (no process), elsewhere through ip -j', async () => {
  const step: Step = { ...base, kind: 'link.wait', id: 'w', ns: HOST, mech: 'wait', links: ['tcveth', 'br0'], timeoutMs: 2000, describe: 'wait' };
  const sys = new FakeSystem(['lo', 'tcveth', 'br0']);
  sys.oper.set('br0', 'down');
  setTimeout(() => sys.oper.set('br0', 'up'), 30);
  const runner = new FakeRunner();
  const out = await MECHANISMS.wait.run([step], HOST, ctx(runner, sys), { force: false });
  assert.equal(out.get('w')!.status, 'applied');
  assert.ok(out.get('w')!.ms! >= 25, `waited ${out.get('w')!.ms} ms for br0`);
  assert.equal(runner.calls.length, 0, 'sysfs answered');

  class NoSysfs extends FakeSystem {
    override operState(): string | null {
      return null;
    }
  }
  let reads = 0;
  const viaIp = new FakeRunner().on((c) => ({ stdout: JSON.stringify([{ ifname: c.argv.at(-1), operstate: ++reads > 2 ? 'UP' : 'LOWERLAYERDOWN' }]) }));
  const out2 = await MECHANISMS.wait.run([step], HOST, ctx(viaIp, new NoSysfs()), { force: false });
  assert.equal(out2.get('w')!.status, 'applied');
  assert.ok(viaIp.calls.every((c) => c.argv.slice(1).join(' ').startsWith('-j link show dev ')));
});

test('wait: a link that never comes up fails the step after its timeout, naming its state', async () => {
  const step: Step = { ...base, kind: 'link.wait', id: 'w', ns: HOST, mech: 'wait', links: ['br0'], timeoutMs: 150, describe: 'wait' };
  const sys = new FakeSystem(['lo', 'br0']);
  sys.oper.set('br0', 'down');
  const out = await MECHANISMS.wait.run([step], HOST, ctx(new FakeRunner(), sys), { force: false });
  assert.equal(out.get('w')!.status, 'failed');
  assert.match(out.get('w')!.stderr!, /not up after 150 ms: br0 is down/);
});
