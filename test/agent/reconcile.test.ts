// NodeReconciler on a fake runner: how often it reads the node, when it counts as converged,
// and that stop() is final.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeReconciler } from '../../agent/reconcile.ts';
import { AgentMetrics } from '../../agent/metrics.ts';
import { JournalStore } from '../../executor/journal.ts';
import { Logger } from '../../lib/log.ts';
import { loadConfig } from '../../cni/config.ts';
import { MODES } from '../../planner/registry.ts';
import type { Runner, RunResult } from '../../executor/runner.ts';
import type { NodeRecord } from '../../model/node.ts';
import { FAKE_FACTS, FakeSystem } from '../helpers/fake-node.ts';

/** Answers `ip -j route show` with no routes; each call waits for `gate` when one is set. */
class RouteRunner implements Runner {
  calls: string[][] = [];
  gate: Promise<void> | null = null;
  failQueries = false;
  get spawned(): number {
    return this.calls.length;
  }
  async run(argv: string[]): Promise<RunResult> {
    this.calls.push(argv);
    if (this.gate) await this.gate;
    if (this.failQueries && argv.includes('-j')) return { argv, exitCode: 1, stdout: '', stderr: 'boom', ms: 0, timedOut: false };
    return { argv, exitCode: 0, stdout: '[]', stderr: '', ms: 0, timedOut: false };
  }
}

const SELF: NodeRecord = { name: 'n1', underlayIp: '198.18.0.11', block: '10.244.0.0/24' };

function reconciler(runner: Runner, nodes: NodeRecord[] = [], generation = () => 1): NodeReconciler {
  const { config } = loadConfig({ cniVersion: '1.1.0', name: 'net', type: 'testcni', subnet: '10.244.0.0/16' });
  return new NodeReconciler({
    mode: MODES.require('host-gw'), config, self: () => SELF, nodes: () => nodes, generation, runner, facts: FAKE_FACTS,
    journals: new JournalStore('/nonexistent-state-dir'), routeProtocol: 151, metrics: new AgentMetrics(), log: new Logger('error'),
    sys: new FakeSystem(),
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a run with nothing to change reads the node once and is converged', async () => {
  const runner = new RouteRunner();
  const r = reconciler(runner, [SELF]);
  assert.equal(r.converged(), false, 'not before the first run');
  await r.runNow();
  assert.equal(runner.calls.length, 1);
  assert.deepEqual(r.routes, []);
  assert.deepEqual(r.last && { ok: r.last.ok, changes: r.last.changes }, { ok: true, changes: 0 });
  assert.equal(r.converged(), true);
});

test('a run that changed the node reads it again; a membership change makes it stale until the next run', async () => {
  const runner = new RouteRunner();
  let generation = 1;
  const r = reconciler(runner, [SELF, { name: 'n2', underlayIp: '198.18.0.12', block: '10.244.1.0/24' }], () => generation);
  await r.runNow();
  assert.ok(runner.calls.some((c) => c.includes('-batch')), 'the missing route was added');
  assert.equal(runner.calls.filter((c) => c.includes('-j')).length, 2, 'observed before and after');
  assert.equal(r.converged(), true);
  generation = 2;
  assert.equal(r.converged(), false, 'planned for an older membership');
});

test('a failing node query is a failed run, not a plan on a partial view', async () => {
  const runner = new RouteRunner();
  runner.failQueries = true;
  const r = reconciler(runner, [SELF, { name: 'n2', underlayIp: '198.18.0.12', block: '10.244.1.0/24' }]);
  await r.runNow();
  assert.equal(r.last?.ok, false);
  assert.match(r.last?.error ?? '', /node query routes failed/);
  assert.ok(!runner.calls.some((c) => c.includes('-batch')), 'nothing changed');
  assert.equal(r.converged(), false);
});

test('after stop() no run starts, not even one asked for while a run was in progress', async () => {
  const runner = new RouteRunner();
  let release!: () => void;
  runner.gate = new Promise((r) => (release = r));
  const r = reconciler(runner);
  const first = r.runNow();
  void r.runNow(); // a change arrives during the run: another run is due after it
  r.stop();
  release();
  await first;
  await sleep(50);
  assert.equal(runner.calls.length, 1, 'only the run in progress read the node');
  r.schedule(0);
  await r.runNow();
  await sleep(20);
  assert.equal(runner.calls.length, 1);
});
