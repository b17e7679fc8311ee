// RouteReconciler on a fake runner: how often it reads the kernel, and that stop() is final.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RouteReconciler } from '../../agent/reconcile.ts';
import { AgentMetrics } from '../../agent/metrics.ts';
import { JournalStore } from '../../executor/journal.ts';
import { Logger } from '../../cni/log.ts';
import type { Runner, RunResult } from '../../executor/runner.ts';
import type { NodeRecord } from '../../planner/node.ts';
import { FAKE_FACTS } from '../helpers/fake-node.ts';

/** Answers `ip -j route show` with no routes; each call waits for `gate` when one is set. */
class RouteRunner implements Runner {
  calls: string[][] = [];
  gate: Promise<void> | null = null;
  get spawned(): number {
    return this.calls.length;
  }
  async run(argv: string[]): Promise<RunResult> {
    this.calls.push(argv);
    if (this.gate) await this.gate;
    return { argv, exitCode: 0, stdout: '[]', stderr: '', ms: 0, timedOut: false };
  }
}

function reconciler(runner: Runner, nodes: NodeRecord[] = []): RouteReconciler {
  return new RouteReconciler({
    self: 'n1', nodes: () => nodes, runner, facts: FAKE_FACTS, journals: new JournalStore('/nonexistent-state-dir'),
    proto: 151, metrics: new AgentMetrics(), log: new Logger('error'),
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a run with nothing to change reads the kernel routes once', async () => {
  const runner = new RouteRunner();
  const r = reconciler(runner, [{ name: 'n1', underlayIp: '198.18.0.11', block: '10.244.0.0/24' }]);
  await r.runNow();
  assert.equal(runner.calls.length, 1);
  assert.deepEqual(r.observed, []);
  assert.deepEqual(r.last && { ok: r.last.ok, changes: r.last.changes }, { ok: true, changes: 0 });
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
  assert.equal(runner.calls.length, 1, 'only the run in progress read the routes');
  r.schedule(0);
  await r.runNow();
  await sleep(20);
  assert.equal(runner.calls.length, 1);
});
