// Keeps this node's kernel routes to the other nodes' blocks equal to what the registry says.
// Runs on every registry change (debounced) and on a timer; one run at a time; routes carry our
// protocol number and nothing else is ever touched.
import type { NodeRecord, NodeRoute } from '../planner/node.ts';
import { desiredRoutes, routeSteps, parseRoutes } from '../planner/node.ts';
import type { NodeFacts } from '../planner/types.ts';
import { Executor } from '../executor/executor.ts';
import type { JournalStore } from '../executor/journal.ts';
import type { Runner } from '../executor/runner.ts';
import type { Logger } from '../cni/log.ts';
import type { AgentMetrics } from './metrics.ts';

export interface ReconcileOutcome {
  at: string;
  ok: boolean;
  changes: number;
  error?: string;
}

export class RouteReconciler {
  private running: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  last: ReconcileOutcome | null = null;
  observed: NodeRoute[] = [];

  constructor(
    private readonly deps: {
      self: string;
      nodes: () => NodeRecord[];
      runner: Runner;
      facts: NodeFacts;
      journals: JournalStore;
      proto: number;
      metrics: AgentMetrics;
      log: Logger;
    },
  ) {}

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

  private async readRoutes(): Promise<NodeRoute[]> {
    const r = await this.deps.runner.run([this.deps.facts.tools.ip, '-j', 'route', 'show', 'proto', String(this.deps.proto)]);
    if (r.exitCode !== 0) throw new Error(`ip route show failed: ${r.stderr.trim()}`);
    return parseRoutes(r.stdout.trim() ? JSON.parse(r.stdout) : []);
  }

  private async once(): Promise<void> {
    const { metrics, log } = this.deps;
    const started = performance.now();
    const at = new Date().toISOString();
    try {
      const observed = await this.readRoutes();
      const steps = routeSteps(desiredRoutes(this.deps.self, this.deps.nodes()), observed, this.deps.facts, this.deps.proto);
      let error: string | undefined;
      if (steps.length > 0) {
        const report = await new Executor({ runner: this.deps.runner, facts: this.deps.facts, journals: this.deps.journals, log }).converge(steps);
        for (const id of report.undone) metrics.routeChanges.inc({ op: id.startsWith('route.del') ? 'del' : 'set' });
        if (report.errors.length > 0) error = report.errors.map((e) => `${e.step}: ${e.stderr}`).join('; ');
        log.info('routes reconciled', { changes: report.undone, errors: report.errors.length });
      }
      this.observed = steps.length > 0 ? await this.readRoutes() : observed;
      this.last = { at, ok: !error, changes: steps.length, ...(error ? { error } : {}) };
      metrics.reconcileRuns.inc({ result: error ? 'error' : 'ok' });
      if (error) log.warn('route reconcile incomplete', { error });
    } catch (e) {
      this.last = { at, ok: false, changes: 0, error: (e as Error).message };
      metrics.reconcileRuns.inc({ result: 'error' });
      log.error('route reconcile failed', { error: (e as Error).message });
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
