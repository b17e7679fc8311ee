// Keeps this node's node-scoped state what its mode's node plan says it should be, for the
// registry as it stands: reads what the mode's queries ask for, plans (pure), converges. Runs on
// every registry change (debounced) and on a timer; one run at a time; nothing outside what the
// mode's plan owns is ever touched.
import type { NodeRecord } from '../model/node.ts';
import type { NetworkConfig } from '../model/config.ts';
import type { NodeFacts, Probe } from '../model/plan.ts';
import type { AnyMode, NodeContext, NodePlanner } from '../planner/mode.ts';
import { Executor } from '../executor/executor.ts';
import { runQueries } from '../executor/probe.ts';
import { realSystem, type NodeSystem } from '../executor/system.ts';
import type { JournalStore } from '../executor/journal.ts';
import type { Runner } from '../executor/runner.ts';
import type { Logger } from '../lib/log.ts';
import type { AgentMetrics } from './metrics.ts';

export interface ReconcileOutcome {
  at: string;
  ok: boolean;
  changes: number;
  /** the membership generation this run planned for */
  generation: number;
  error?: string;
}

export interface ReconcilerDeps {
  mode: AnyMode;
  config: NetworkConfig;
  self: () => NodeRecord;
  /** every routable node, this one included */
  nodes: () => NodeRecord[];
  /** bumped by the caller on every membership change */
  generation: () => number;
  runner: Runner;
  facts: NodeFacts;
  journals: JournalStore;
  routeProtocol: number;
  metrics: AgentMetrics;
  log: Logger;
  sys?: NodeSystem;
}

export class NodeReconciler {
  private running: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly planner: NodePlanner | null;
  last: ReconcileOutcome | null = null;
  /** what the mode reports of the node's routes, as last observed */
  routes: { dst: string; via: string }[] = [];

  constructor(private readonly deps: ReconcilerDeps) {
    this.planner = deps.mode.node;
  }

  /** The last run succeeded for the current membership. */
  converged(): boolean {
    return this.last !== null && this.last.ok && this.last.generation === this.deps.generation();
  }

  /** Asks for a run soon; changes arriving together share one run. */
  schedule(delayMs = 10): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runNow();
    }, delayMs);
  }

  async runNow(): Promise<void> {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.once().finally(() => {
      this.running = null;
      if (this.again) {
        this.again = false;
        this.schedule(0);
      }
    });
    return this.running;
  }

  private context(): NodeContext {
    const { config, facts, routeProtocol } = this.deps;
    return { config, facts, routeProtocol, self: this.deps.self(), nodes: this.deps.nodes() };
  }

  /** Each query's parsed JSON (or text); a query that fails is an error: planning on a partial
   *  view could remove what is still wanted. */
  private async observe(planner: NodePlanner, ctx: NodeContext): Promise<Record<string, unknown>> {
    const observed = await this.query(planner.observe(ctx));
    if (planner.observeMore) Object.assign(observed, await this.query(planner.observeMore(ctx, observed)));
    return observed;
  }

  private query(queries: Record<string, Probe>): Promise<Record<string, unknown>> {
    return runQueries(queries, this.deps.facts, this.deps.runner, this.deps.sys ?? realSystem, true);
  }

  private async once(): Promise<void> {
    const { metrics, log } = this.deps;
    const started = performance.now();
    const at = new Date().toISOString();
    const generation = this.deps.generation();
    const planner = this.planner;
    if (!planner) {
      this.last = { at, ok: true, changes: 0, generation };
      return;
    }
    try {
      const ctx = this.context();
      let observed = await this.observe(planner, ctx);
      const steps = planner.plan(ctx, observed);
      let error: string | undefined;
      if (steps.length > 0) {
        const report = await new Executor({ runner: this.deps.runner, facts: this.deps.facts, journals: this.deps.journals, log, sys: this.deps.sys }).converge(steps);
        for (const id of report.undone) metrics.nodeChanges.inc({ kind: steps.find((s) => s.id === id)?.kind ?? 'unknown' });
        if (report.errors.length > 0) error = report.errors.map((e) => `${e.step}: ${e.stderr}`).join('; ');
        log.info('node state reconciled', { changes: report.undone, errors: report.errors.length });
        observed = await this.observe(planner, ctx);
      }
      this.routes = planner.routes?.(observed) ?? [];
      this.last = { at, ok: !error, changes: steps.length, generation, ...(error ? { error } : {}) };
      metrics.reconcileRuns.inc({ result: error ? 'error' : 'ok' });
      if (error) log.warn('node reconcile incomplete', { error });
    } catch (e) {
      this.last = { at, ok: false, changes: 0, generation, error: (e as Error).message };
      metrics.reconcileRuns.inc({ result: 'error' });
      log.error('node reconcile failed', { error: (e as Error).message });
    } finally {
      metrics.reconcileSeconds.observe((performance.now() - started) / 1000);
    }
  }

  /** No run starts after this, also none asked for by a run still in progress. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
