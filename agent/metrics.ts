// Prometheus metrics of the agent (served on the metrics address at /metrics).
import { Registry, Counter, Histogram, Gauge, collectDefaultMetrics } from 'prom-client';
import type { DaemonStatus } from '../model/daemon.ts';

/** How long one reading of the node daemons serves a scrape's metrics (they share it). */
const DAEMON_READING_MS = 200;
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

  /**
   * Metrics of the node's daemons (BIRD for ipip) and their peer sessions (BGP), read from them at
   * scrape time: up, reloads and restarts per daemon; per session whether it is established,
   * since when, and its routes by direction.
   */
  watchDaemons(read: () => Promise<DaemonStatus[]>): void {
    let reading: { at: number; value: Promise<DaemonStatus[]> } | null = null;
    const current = () => {
      if (!reading || Date.now() - reading.at > DAEMON_READING_MS) reading = { at: Date.now(), value: read().catch(() => []) };
      return reading.value;
    };
    const registers = [this.registry];
    new Gauge({
      name: 'testcni_daemon_up', help: '1 while the node daemon runs (BIRD for ipip)', labelNames: ['daemon'], registers,
      async collect() {
        this.reset();
        for (const d of await current()) this.set({ daemon: d.name }, d.running ? 1 : 0);
      },
    });
    new Counter({
      name: 'testcni_daemon_reloads_total', help: 'Configuration reloads of the node daemon (one per change of its config)', labelNames: ['daemon'], registers,
      async collect() {
        this.reset();
        for (const d of await current()) this.inc({ daemon: d.name }, d.reloads);
      },
    });
    new Counter({
      name: 'testcni_daemon_restarts_total', help: 'Times the node daemon was started again after it died', labelNames: ['daemon'], registers,
      async collect() {
        this.reset();
        for (const d of await current()) this.inc({ daemon: d.name }, d.restarts);
      },
    });
    const sessionLabels = ['daemon', 'session', 'peer', 'peer_as'];
    new Gauge({
      name: 'testcni_peer_session_established', help: '1 when the routing session (BGP) with the peer is established', labelNames: sessionLabels, registers,
      async collect() {
        this.reset();
        for (const d of await current()) {
          for (const s of d.sessions ?? []) this.set({ daemon: d.name, session: s.name, peer: s.peer, peer_as: String(s.peerAs ?? '') }, s.established ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'testcni_peer_session_state_since_seconds', help: 'When the session last changed state (Unix time)', labelNames: sessionLabels, registers,
      async collect() {
        this.reset();
        for (const d of await current()) {
          for (const s of d.sessions ?? []) if (s.sinceMs !== null) this.set({ daemon: d.name, session: s.name, peer: s.peer, peer_as: String(s.peerAs ?? '') }, s.sinceMs / 1000);
        }
      },
    });
    new Gauge({
      name: 'testcni_peer_session_routes', help: 'Routes of the session: imported (received and accepted), exported (sent), filtered, preferred', labelNames: ['daemon', 'session', 'peer', 'direction'], registers,
      async collect() {
        this.reset();
        for (const d of await current()) {
          for (const s of d.sessions ?? []) {
            for (const [direction, n] of Object.entries(s.routes)) this.set({ daemon: d.name, session: s.name, peer: s.peer, direction }, n);
          }
        }
      },
    });
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
