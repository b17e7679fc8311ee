// Keeps this node's node-scoped state what its mode's node plan says it should be, for the
// registry as it stands: reads what the mode's queries ask for, plans (pure), converges, then
// keeps the daemons the plan declares (NodeDaemons) configured and running. Runs on every
// registry change (debounced) and on a timer; one run at a time; nothing outside what the
// mode's plan owns is ever touched. While the plan says the node still waits for something
// others bring (routes learned over BGP), it looks again, sooner at first, until it is there.
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
import { NodeDaemons } from './daemons/manager.ts';
import type { Backoff } from './daemons/supervisor.ts';
import type { DaemonStatus } from '../model/daemon.ts';

export interface ReconcileOutcome {
  at: string;
  ok: boolean;
  changes: number;
  /** the membership generation this run planned for */
  generation: number;
  error?: string;
  /** what the node still waits for (NodePlanner.waitingFor), when it waits */
  waitingFor?: string;
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
  /** the node's underlay network (CIDR), when known */
  underlaySubnet?: string | null;
  /** the node's run (sockets, PID files) and state directories, for the daemons' files */
  dirs?: { run: string; state: string };
  /** the node planner's secret files, read now (an unreadable one throws code 7 naming its field) */
  secrets?: () => Record<string, string>;
  metrics: AgentMetrics;
  log: Logger;
  sys?: NodeSystem;
  /** restart backoff of the node's daemons */
  daemonBackoff?: Partial<Backoff>;
}

/** How soon a node that waits for something looks again: growing by half from the first to the
 *  last (BGP routes arrive about a second after BIRD starts; each look is a few `ip` queries). */
const WAIT_POLL_MS = { first: 100, growth: 1.5, max: 2000 };

export class NodeReconciler {
  private running: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly planner: NodePlanner | null;
  last: ReconcileOutcome | null = null;
  /** what the mode reports of the node's routes, as last observed */
  routes: { dst: string; via: string }[] = [];
  readonly daemons: NodeDaemons;
  private pollMs = WAIT_POLL_MS.first;

  constructor(private readonly deps: ReconcilerDeps) {
    this.planner = deps.mode.node;
    const sessions = this.planner?.sessions?.bind(this.planner);
    this.daemons = new NodeDaemons({ runner: deps.runner, log: deps.log, ...(sessions ? { sessions } : {}), ...(deps.daemonBackoff ? { backoff: deps.daemonBackoff } : {}) });
  }

  /** The last run succeeded for the current membership, and the node waits for nothing. */
  converged(): boolean {
    return this.last !== null && this.last.ok && this.last.generation === this.deps.generation() && this.last.waitingFor === undefined;
  }

  daemonStatus(): Promise<DaemonStatus[]> {
    return this.daemons.status();
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
    return {
      config, facts, routeProtocol, self: this.deps.self(), nodes: this.deps.nodes(),
      underlaySubnet: this.deps.underlaySubnet ?? null,
      dirs: this.deps.dirs ?? { run: '/run/testcni', state: '/var/lib/testcni' },
      secrets: this.deps.secrets?.() ?? {},
    };
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
      const errors: string[] = [];
      let changed = 0;
      if (steps.length > 0) {
        const report = await new Executor({ runner: this.deps.runner, facts: this.deps.facts, journals: this.deps.journals, log, sys: this.deps.sys }).converge(steps);
        for (const id of report.undone) metrics.nodeChanges.inc({ kind: steps.find((s) => s.id === id)?.kind ?? 'unknown' });
        changed = report.undone.length;
        if (report.errors.length > 0) errors.push(report.errors.map((e) => `${e.step}: ${e.stderr}`).join('; '));
        log.info('node state reconciled', { changes: report.undone, errors: report.errors.length });
        observed = await this.observe(planner, ctx);
      }
      let daemonFailed = false;
      if (planner.daemons && !this.stopped) {
        try {
          await this.daemons.sync(planner.daemons(ctx, observed), { nodeChanged: changed > 0 });
        } catch (e) {
          daemonFailed = true;
          errors.push(`daemons: ${(e as Error).message}`);
        }
      }
      this.routes = planner.routes?.(observed) ?? [];
      const waitingFor = planner.waitingFor?.(ctx, observed) ?? null;
      const error = errors.length > 0 ? errors.join('; ') : undefined;
      this.last = { at, ok: !error, changes: steps.length, generation, ...(error ? { error } : {}), ...(waitingFor ? { waitingFor } : {}) };
      metrics.reconcileRuns.inc({ result: error ? 'error' : 'ok' });
      if (error) log.warn('node reconcile incomplete', { error });
      // A daemon that could not start is tried again soon, not at the next resync.
      this.lookAgainIfWaiting(waitingFor !== null || daemonFailed);
    } catch (e) {
      this.last = { at, ok: false, changes: 0, generation, error: (e as Error).message };
      metrics.reconcileRuns.inc({ result: 'error' });
      log.error('node reconcile failed', { error: (e as Error).message });
    } finally {
      metrics.reconcileSeconds.observe((performance.now() - started) / 1000);
    }
  }

  /** While the node waits for others (routes over BGP) or for a daemon, runs again after a
   *  growing pause. */
  private lookAgainIfWaiting(waiting: boolean): void {
    if (!waiting) {
      this.pollMs = WAIT_POLL_MS.first;
      return;
    }
    this.schedule(this.pollMs);
    this.pollMs = Math.min(Math.round(this.pollMs * WAIT_POLL_MS.growth), WAIT_POLL_MS.max);
  }

  /** No run starts after this, also none asked for by a run still in progress. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Stops the node's daemons (after stop()). `restart`: the agent restarts, peers keep the
   *  node's routes meanwhile; `leave`: they drop them at once. */
  async stopDaemons(how: 'leave' | 'restart'): Promise<void> {
    await this.running?.catch(() => undefined);
    await this.daemons.stop(how);
  }
}
