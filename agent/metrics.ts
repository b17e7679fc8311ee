// Prometheus metrics of the agent (served on the metrics address at /metrics).
import { Registry, Counter, Histogram, Gauge, collectDefaultMetrics } from 'prom-client';
import type { ModeGauge } from '../planner/mode.ts';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly allocations = new Counter({ name: 'testcni_ipam_allocations_total', help: 'Address allocations by result', labelNames: ['result'], registers: [this.registry] });
  readonly releases = new Counter({ name: 'testcni_ipam_releases_total', help: 'Address releases by result', labelNames: ['result'], registers: [this.registry] });
  readonly allocationSeconds = new Histogram({
    name: 'testcni_ipam_allocation_seconds', help: 'Latency of address allocations', registers: [this.registry],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2],
  });
  readonly apiRequests = new Counter({ name: 'testcni_api_requests_total', help: 'Agent API requests', labelNames: ['path', 'status'], registers: [this.registry] });
  readonly reconcileRuns = new Counter({ name: 'testcni_reconcile_runs_total', help: 'Node-state reconcile runs by result', labelNames: ['result'], registers: [this.registry] });
  readonly reconcileSeconds = new Histogram({
    name: 'testcni_reconcile_seconds', help: 'Duration of node-state reconcile runs', registers: [this.registry],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  });
  readonly nodeChanges = new Counter({ name: 'testcni_node_changes_total', help: 'Node-state changes made by reconcile, by step kind (route.add, route.del, ...)', labelNames: ['kind'], registers: [this.registry] });
  readonly knownNodes = new Gauge({ name: 'testcni_known_nodes', help: 'Nodes in the registry, this one included', registers: [this.registry] });
  readonly etcdUp = new Gauge({ name: 'testcni_etcd_up', help: '1 when etcd answered the last health check', registers: [this.registry] });
  readonly ready = new Gauge({ name: 'testcni_agent_ready', help: '1 when the agent serves allocations', registers: [this.registry] });

  /** the mode's own figures (ModeInspector), by metric name */
  private readonly modeGauges = new Map<string, Gauge>();
  /** run before every scrape (the mode's view of the node is read then) */
  beforeCollect: (() => Promise<void>) | null = null;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'testcni_agent_' });
  }

  /** The mode's gauges as its last report has them (testcni_<name>{labels}). */
  setModeGauges(gauges: ModeGauge[]): void {
    for (const g of this.modeGauges.values()) g.reset();
    for (const m of gauges) {
      const name = `testcni_${m.name}`;
      let g = this.modeGauges.get(name);
      if (!g) {
        g = new Gauge({ name, help: m.help, labelNames: Object.keys(m.labels), registers: [this.registry] });
        this.modeGauges.set(name, g);
      }
      g.set(m.labels, m.value);
    }
  }

  /** The exposition text, after the mode's figures were read. */
  async text(): Promise<string> {
    await this.beforeCollect?.();
    return this.registry.metrics();
  }
}
