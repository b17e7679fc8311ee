import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Executor } from '../../executor/executor.ts';
import { JournalStore } from '../../executor/journal.ts';
import { compile, teardownSteps } from '../../planner/compile.ts';
import { loadConfig } from '../../cni/config.ts';
import { CniError } from '../../model/errors.ts';
import { HOST, type Plan, type Step } from '../../model/plan.ts';
import { MODES } from '../../planner/registry.ts';
import { argvOf } from '../../model/plan.ts';
import { hostVethName } from '../../planner/names.ts';
import { FakeRunner, FakeSystem, FAKE_FACTS, batchFailure } from '../helpers/fake-node.ts';

const POD = '/var/run/netns/fake-pod';

function tempJournals(t: { after: (fn: () => void) => void }): JournalStore {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-exec-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return new JournalStore(dir);
}

function hostGwPlan(extra: Record<string, unknown> = {}): Plan {
  const { config } = loadConfig({ cniVersion: '1.1.0', name: 'net', type: 'testcni', subnet: '10.244.0.0/16', ...extra });
  return compile({
    command: 'ADD', config, containerId: 'c1', ifName: 'eth0', netns: POD,
    lease: { address: '10.244.0.5/24', gateway: '10.244.0.1' }, facts: FAKE_FACTS,
  }, MODES.require(config.mode));
}

/** A synthetic plan of n undoable pod steps alternating between the pod netns and the node. */
function undoablePlan(n: number): Plan {
  const steps: Step[] = Array.from({ length: n }, (_, i) => {
    const ns = i % 2 === 0 ? POD : HOST;
    return {
      id: `link.add:${i + 1}`, kind: 'link.add', scope: 'pod', ns,
      mech: 'ip', argv: ['/usr/sbin/ip', 'link', 'add', `x${i + 1}`, 'type', 'veth'], idempotent: false,
      undo: { ns, mech: 'ip', argv: ['/usr/sbin/ip', 'link', 'del', `x${i + 1}`] },
      probe: { ns, mech: 'links', argv: ['/usr/sbin/ip', '-j', 'link', 'show'], expect: { $some: { ifname: `x${i + 1}` } } },
      describe: `link x${i + 1}`,
    };
  });
  return { command: 'ADD', network: 'net', containerId: 'c1', ifName: 'eth0', netns: POD, mode: 'host-gw', inputsDigest: 'd', steps, result: null };
}

test('host-gw ADD runs in two processes: one pod batch, one node batch; node sysctls in-process, only where wrong', async (t) => {
  const runner = new FakeRunner();
  const sys = new FakeSystem(['lo'], new Set([POD]));
  sys.sysctls.set('net.ipv4.ip_forward', '1\n'); // already right: left alone
  const journals = tempJournals(t);
  const plan = hostGwPlan();
  const j = await new Executor({ runner, facts: FAKE_FACTS, journals, sys }).apply(plan, null);
  assert.equal(runner.calls.length, 2);
  assert.deepEqual(runner.calls[0]!.argv, ['/usr/bin/nsenter', `--net=${POD}`, '--', '/usr/sbin/ip', '-batch', '-']);
  assert.deepEqual(runner.calls[1]!.argv, ['/usr/sbin/ip', '-batch', '-']);
  const hostLines = runner.calls[1]!.input.trim().split('\n');
  assert.ok(hostLines[0]!.startsWith('link add name testcni0 '), 'the missing bridge is created');
  assert.equal(j.steps['sysctl:host:net.ipv4.ip_forward']!.status, 'skipped', 'a node sysctl already right is not written');
  for (const key of ['net.ipv4.conf.default.forwarding', 'net.ipv4.conf.eth0.forwarding', 'net.ipv4.conf.testcni0.forwarding']) {
    assert.equal(sys.sysctls.get(key), '1', `${key} written in-process`);
    assert.equal(j.steps[`sysctl:host:${key}`]!.status, 'applied');
  }
  assert.equal(j.steps[`link.wait:host:${hostVethName('c1', 'eth0')}+testcni0`]!.status, 'applied', 'the links were up (read in-process)');
  assert.equal(j.state, 'applied');
  assert.ok(Object.values(j.steps).every((s) => s.status === 'applied' || s.status === 'skipped'));
  assert.equal(journals.read(j)!.state, 'applied', 'journal on disk says applied');
});

test('a node step whose probe holds is skipped and runs nothing', async (t) => {
  const runner = new FakeRunner();
  const sys = new FakeSystem(['lo', 'testcni0'], new Set([POD]));
  const j = await new Executor({ runner, facts: FAKE_FACTS, journals: tempJournals(t), sys }).apply(hostGwPlan(), null);
  assert.equal(j.steps['link.bridge:host:testcni0']!.status, 'skipped');
  assert.ok(!runner.batchLines().some((l) => l.startsWith('link add name testcni0')), 'no bridge creation attempted');
  assert.equal(runner.calls.length, 2, 'the probe itself started no process');
});

test('a skipped node step at the end of the plan is journalled as skipped', async (t) => {
  const plan = undoablePlan(2);
  plan.steps.shift(); // one pod step on the node: the unit before the probe runs before it
  plan.steps.push({
    id: 'link.bridge:host:br9', kind: 'link.add', scope: 'node', ns: HOST, mech: 'ip', argv: ['/usr/sbin/ip', 'link', 'add', 'br9', 'type', 'bridge'],
    idempotent: false, undo: null, probe: { ns: HOST, mech: 'links', argv: ['/usr/sbin/ip', '-j', 'link', 'show'], expect: { $some: { ifname: 'br9' } } }, describe: 'bridge br9',
  });
  const journals = tempJournals(t);
  await new Executor({ runner: new FakeRunner(), facts: FAKE_FACTS, journals, sys: new FakeSystem(['lo', 'br9'], new Set([POD])) }).apply(plan, null);
  const onDisk = journals.read(plan)!;
  assert.equal(onDisk.state, 'applied');
  assert.deepEqual(onDisk.steps, { 'link.add:2': { status: 'applied', ms: 0 }, 'link.bridge:host:br9': { status: 'skipped' } });
});

for (let k = 1; k <= 5; k++) {
  test(`failure at step ${k} of 5 undoes steps 1..${k - 1} in reverse and journals it`, async (t) => {
    const plan = undoablePlan(5);
    const failing = plan.steps[k - 1]!;
    const runner = new FakeRunner().on((c) => (c.input.includes(`link add x${k} `) ? batchFailure(1) : undefined));
    // Node-side links the plan made are visible to the in-process probe, as on a real node.
    const sys = new FakeSystem(['lo', 'x2', 'x4'], new Set([POD]));
    const journals = tempJournals(t);
    const err = await new Executor({ runner, facts: FAKE_FACTS, journals, sys }).apply(plan, null).then(
      () => assert.fail('apply should fail'),
      (e: unknown) => e as CniError,
    );
    assert.equal(err.code, 101);
    assert.match(err.details, new RegExp(`link add x${k} type veth`), 'details name the failing command');
    assert.match(err.details, /rollback complete/);
    const forward = runner.batchLines().filter((l) => l.startsWith('link add'));
    const undos = runner.batchLines().filter((l) => l.startsWith('link del'));
    assert.deepEqual(forward, Array.from({ length: k }, (_, i) => `link add x${i + 1} type veth`), 'stops at the failing step');
    assert.deepEqual(undos, Array.from({ length: k - 1 }, (_, i) => `link del x${k - 1 - i}`), 'undo in reverse order');
    const j = journals.read(plan)!;
    assert.equal(j.state, 'rolled-back');
    assert.equal(j.steps[failing.id]!.status, 'failed');
    for (let i = 1; i < k; i++) assert.equal(j.steps[`link.add:${i}`]!.status, 'undone');
    for (let i = k + 1; i <= 5; i++) assert.equal(j.steps[`link.add:${i}`]!.status, 'pending');
  });
}

test('a failing undo during rollback gives code 102 and keeps the journal open', async (t) => {
  const plan = undoablePlan(3);
  const runner = new FakeRunner()
    .on((c) => (c.input.includes('link add x3 ') ? batchFailure(1) : undefined))
    .on((c) => (c.input.includes('link del x1') ? batchFailure(1, 'RTNETLINK answers: Device or resource busy') : undefined))
    .on((c) => (c.argv.includes('-j') ? { stdout: JSON.stringify([{ ifname: 'x1' }]) } : undefined));
  const sys = new FakeSystem(['lo', 'x2'], new Set([POD]));
  const journals = tempJournals(t);
  const err = (await new Executor({ runner, facts: FAKE_FACTS, journals, sys }).apply(plan, null).catch((e) => e)) as CniError;
  assert.equal(err.code, 102);
  assert.match(err.details, /rollback incomplete.*link del x1/);
  const j = journals.read(plan)!;
  assert.equal(j.state, 'rollback-incomplete');
  assert.equal(j.steps['link.add:1']!.status, 'applied', 'x1 is still in effect');
  assert.equal(j.steps['link.add:2']!.status, 'undone');
});

test('teardown of state that is already gone starts no process (DEL twice)', async (t) => {
  const plan = hostGwPlan({ ipMasq: false });
  const runner = new FakeRunner();
  const sys = new FakeSystem(['lo', 'testcni0'], new Set());
  const report = await new Executor({ runner, facts: FAKE_FACTS, journals: tempJournals(t), sys }).teardown(teardownSteps(plan.steps));
  assert.deepEqual(report.errors, []);
  assert.deepEqual(report.undone, ['undo:neigh:host:testcni0:10.244.0.5', 'undo:link.veth:pod:eth0'], 'the node\'s entry for the pod, then the veth');
  assert.equal(runner.calls.length, 0);
});

test('teardown: a failed undo whose effect is gone is done; one whose effect remains is an error', async (t) => {
  const plan = hostGwPlan({ ipMasq: true });
  const steps = teardownSteps(plan.steps);
  assert.deepEqual(steps.map((s) => s.id), ['undo:masq:host:10.244.0.5', 'undo:neigh:host:testcni0:10.244.0.5', 'undo:link.veth:pod:eth0']);
  const host = argvOf(steps[2]!)[4]!; // link del dev HOST
  // iptables -D fails because the rule is gone (-C exits 1); link del fails but the link stays.
  const runner = new FakeRunner()
    .on((c) => (c.argv.includes('-D') ? { exitCode: 1, stderr: 'Bad rule' } : undefined))
    .on((c) => (c.argv.includes('-C') ? { exitCode: 1 } : undefined))
    .on((c) => (c.input.includes(`link del dev ${host}`) ? batchFailure(1, 'RTNETLINK answers: Operation not permitted') : undefined))
    .on((c) => (c.argv.includes('-j') ? { stdout: JSON.stringify([{ ifname: host }]) } : undefined));
  const sys = new FakeSystem(['lo', 'testcni0', host], new Set([POD]));
  const report = await new Executor({ runner, facts: FAKE_FACTS, journals: tempJournals(t), sys }).teardown(steps);
  assert.deepEqual(report.undone, ['undo:neigh:host:testcni0:10.244.0.5', 'undo:masq:host:10.244.0.5'], 'no entry for the pod: nothing to flush, no process');
  assert.equal(report.errors.length, 1);
  assert.equal(report.errors[0]!.step, 'undo:link.veth:pod:eth0');
  assert.ok(runner.calls.some((c) => c.argv.includes('-force')), 'undo batches keep going past a failed line');
});

test('CHECK reports exactly the steps whose probes no longer hold', async (t) => {
  const plan = hostGwPlan();
  const host = argvOf(plan.steps.find((s) => s.id.startsWith('link.veth'))!)[13]!; // … peer name HOST
  const runner = new FakeRunner()
    .on((c) => (c.argv.includes('exact') ? { stdout: JSON.stringify([{ dst: '10.244.0.1', dev: 'eth0', scope: 'link' }]) } : undefined))
    .on((c) => (c.argv.includes('route') ? { stdout: '[]' } : undefined)) // the default route is gone
    .on((c) => (c.argv.includes('addr') && c.argv.includes('eth0') ? { stdout: JSON.stringify([{ addr_info: [{ local: '10.244.0.5', prefixlen: 32 }] }]) } : undefined))
    .on((c) => (c.argv.includes('addr') ? { stdout: JSON.stringify([{ addr_info: [{ local: '10.244.0.1', prefixlen: 24 }] }]) } : undefined))
    .on((c) => (c.argv.includes(host) ? { stdout: JSON.stringify([{ ifname: host, master: 'testcni0', flags: ['UP'], operstate: 'UP', linkinfo: { info_slave_data: { hairpin: true } } }]) } : undefined))
    .on((c) => (c.argv.includes('link') ? { stdout: JSON.stringify([{ ifname: 'eth0', flags: ['UP'] }, { ifname: 'testcni0', flags: ['UP'] }]) } : undefined));
  const sys = new FakeSystem(['lo', 'testcni0', host], new Set([POD]));
  for (const key of ['net.ipv4.ip_forward', 'net.ipv4.conf.default.forwarding', 'net.ipv4.conf.eth0.forwarding', 'net.ipv4.conf.testcni0.forwarding']) sys.sysctls.set(key, '1\n');
  for (const key of ['net.ipv4.conf.all.send_redirects', 'net.ipv4.conf.testcni0.send_redirects']) sys.sysctls.set(key, '0\n');
  const neigh = plan.steps.find((s) => s.kind === 'neigh.add')!.probe!.expect as { $some: { dst: string; lladdr: string } };
  sys.neigh.set('testcni0', [{ ...neigh.$some, state: ['PERMANENT'] }]);
  const drift = await new Executor({ runner, facts: FAKE_FACTS, journals: tempJournals(t), sys }).check(plan);
  assert.deepEqual(drift.map((d) => d.step), ['route:pod:default']);
});

test('a shared node object created by a concurrent ADD between probe and command is not a failure', async (t) => {
  const sys = new FakeSystem(['lo'], new Set([POD]));
  // The bridge appears (another ADD made it) just as ours tries to create it.
  const runner = new FakeRunner().on((c) => {
    if (c.input.startsWith('link add name testcni0')) {
      sys.links.push('testcni0');
      return batchFailure(1);
    }
    return undefined;
  });
  const j = await new Executor({ runner, facts: FAKE_FACTS, journals: tempJournals(t), sys }).apply(hostGwPlan(), null);
  assert.equal(j.state, 'applied');
  assert.equal(j.steps['link.bridge:host:testcni0']!.status, 'skipped');
  const last = runner.calls[runner.calls.length - 1]!;
  assert.ok(!last.input.includes('link add name testcni0'), 'the rest of the node batch ran again without the bridge');
  assert.match(last.input, /addr replace 10\.244\.0\.1\/24 dev testcni0/);
  assert.match(last.input, /master testcni0 up/);
});

/** A journal store on a disk that fills up: the n-th append (1-based) fails with ENOSPC. */
class FillingJournals extends JournalStore {
  appends = 0;
  constructor(dir: string, private readonly failAt: number) {
    super(dir);
  }
  override append(...args: Parameters<JournalStore['append']>): void {
    if (++this.appends === this.failAt) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
    super.append(...args);
  }
}

test('a journal append that fails (disk full) rolls back whatever ran, at every append of the plan', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-exec-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const plan = undoablePlan(4);
  // A successful apply appends once per unit and once for the final state.
  const ok = new FillingJournals(join(dir, 'ok'), Infinity);
  await new Executor({ runner: new FakeRunner(), facts: FAKE_FACTS, journals: ok, sys: new FakeSystem(['lo'], new Set([POD])) }).apply(plan, null);
  assert.ok(ok.appends >= 3, `${ok.appends} appends`);
  for (let failAt = 1; failAt <= ok.appends; failAt++) {
    const runner = new FakeRunner();
    const journals = new FillingJournals(join(dir, String(failAt)), failAt);
    const err = await new Executor({ runner, facts: FAKE_FACTS, journals, sys: new FakeSystem(['lo'], new Set([POD])) }).apply(plan, null)
      .then(() => null, (e: unknown) => e);
    assert.ok(err instanceof CniError, `append ${failAt}: a CniError, not ${err}`);
    assert.equal(err.code, 5, `append ${failAt}: I/O failure, rolled back (${err.message}: ${err.details})`);
    assert.match(err.details, /rollback complete/);
    const ran = runner.batchLines().filter((l) => l.startsWith('link add')).length;
    assert.ok(ran > 0, `append ${failAt}: something ran before the failure`);
    assert.ok(runner.batchLines().some((l) => l.startsWith('link del')), `append ${failAt}: undo commands ran`);
    const j = journals.read(plan);
    assert.equal(j?.state, 'rolled-back', `append ${failAt}: the journal says rolled back`);
    const left = Object.entries(j!.steps).filter(([, r]) => r.status === 'applied' || r.status === 'unknown');
    assert.deepEqual(left, [], `append ${failAt}: no step is left applied`);
    assert.equal(Object.values(j!.steps).filter((r) => r.status === 'undone').length, ran, `append ${failAt}: each step that ran is undone`);
  }
});

test('the journal\'s first write failing (disk full) is code 5 and runs nothing', async (t) => {
  const runner = new FakeRunner();
  const journals = tempJournals(t);
  journals.write = () => { throw Object.assign(new Error('ENOSPC: no space left on device, open'), { code: 'ENOSPC', syscall: 'open' }); };
  const err = await new Executor({ runner, facts: FAKE_FACTS, journals, sys: new FakeSystem(['lo'], new Set([POD])) }).apply(undoablePlan(2), null).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof CniError && err.code === 5, String(err));
  assert.equal(runner.calls.length, 0);
});
