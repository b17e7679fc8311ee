// The node agent: registers the node, claims its block, serves IPAM to the plugin and keeps
// routes converged. It never makes the plugin wait on a dead datastore: requests fail fast
// with "try again later" (CNI code 11) while etcd is unreachable.
import type { Server } from 'node:http';
import { join, dirname } from 'node:path';
import type { Watcher } from 'etcd3';
import type { AgentConfig } from './config.ts';
import { EtcdStore, DatastoreUnavailable, BlocksExhausted, withTimeout } from './datastore/etcd-store.ts';
import { IpamService, PoolExhausted } from './ipam-service.ts';
import { AgentMetrics } from './metrics.ts';
import { apiServer, listenUnix, metricsServer, ApiFailure, type AgentHandlers } from './api.ts';
import { NodeReconciler } from './reconcile.ts';
import { systemWithProcSys, type NodeSystem } from '../executor/system.ts';
import { Membership } from './membership.ts';
import { writeCniConfig } from './cni-config.ts';
import type { NodeRecord } from '../model/node.ts';
import type { AgentStatus } from '../ipam/agent-protocol.ts';
import type { AttachmentKey } from '../model/lease.ts';
import type { Lease } from '../model/lease.ts';
import type { Logger } from '../lib/log.ts';
import { ProcessRunner } from '../executor/runner.ts';
import { JournalStore } from '../executor/journal.ts';
import { resolveTools, defaultRouteDevice, gatherFacts } from '../executor/facts.ts';
import { inspectWith } from '../executor/probe.ts';
import type { NodeFacts } from '../model/plan.ts';
import { MODES } from '../planner/registry.ts';
import type { AnyMode } from '../planner/mode.ts';
import { poolOf } from '../ipam/pool.ts';
import { formatIp } from '../lib/ipv4.ts';
import { removeIfExists } from '../lib/atomic-file.ts';
import { readSecretFiles } from './secrets.ts';

export const AGENT_VERSION = '0.2.0';
const HEALTH_INTERVAL_MS = 1000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Agent implements AgentHandlers {
  readonly metrics = new AgentMetrics();
  private readonly store: EtcdStore;
  private ipam: IpamService | null = null;
  private readonly members: Membership;
  private expiryTimer: NodeJS.Timeout | null = null;
  private registered: string | null = null;
  private etcdUp = false;
  private lastCheck: string | null = null;
  private leaseLost = false;
  private stopped = false;
  private servers: Server[] = [];
  private watcher: Watcher | null = null;
  private timers: NodeJS.Timeout[] = [];
  private readonly reconciler: NodeReconciler;
  /** bumped on every membership change: a reconcile is current when it planned for this one */
  private generation = 0;
  private cniConfWritten = false;
  private readonly mode: AnyMode;
  private readonly runner = new ProcessRunner();
  /** the node's in-process view: its sysctls where cfg.procSys says */
  private readonly sys: NodeSystem;
  /** the mode's programs and its node plan's own (e.g. BIRD and birdc) */
  private readonly tools: string[];
  /** what the node plan and the mode's operator view are planned with (filled in at start) */
  private readonly facts: NodeFacts;

  constructor(
    readonly cfg: AgentConfig,
    private readonly log: Logger,
  ) {
    this.store = new EtcdStore(cfg.etcd);
    this.members = new Membership(cfg.routeGraceSeconds * 1000);
    const mode = MODES.require(cfg.networkConfig.mode);
    const nodePlanner = mode.node;
    this.mode = mode;
    this.tools = [...mode.tools(cfg.networkConfig), ...(nodePlanner?.tools?.(cfg.networkConfig) ?? [])];
    this.sys = systemWithProcSys(cfg.procSys);
    this.facts = {
      tools: resolveTools(this.tools),
      hostPid: process.pid,
      uplink: cfg.underlayInterface ?? defaultRouteDevice(),
      uplinkMtu: null,
    };
    this.reconciler = new NodeReconciler({
      mode,
      config: cfg.networkConfig,
      self: () => this.self(),
      nodes: () => this.members.routable(),
      generation: () => this.generation,
      runner: this.runner,
      facts: this.facts,
      journals: new JournalStore(cfg.stateDir),
      sys: this.sys,
      routeProtocol: cfg.routeProtocol,
      underlaySubnet: cfg.underlaySubnet,
      dirs: { run: dirname(cfg.socket), state: cfg.stateDir },
      // Read on every run: a rotated password reaches BIRD with the next reconcile.
      secrets: () => readSecretFiles(nodePlanner?.secretFiles?.(cfg.networkConfig) ?? {}, nodePlanner?.checkSecret?.bind(nodePlanner)),
      metrics: this.metrics,
      log,
    });
    this.metrics.watchDaemons(() => this.reconciler.daemonStatus());
  }

  /** The node facts the mode's node plan needs: the underlay's MTU, the network namespace, the
   *  mode's compiled objects (read once: a new build comes with a new agent). */
  private async gatherFacts(): Promise<void> {
    const nc = this.cfg.networkConfig;
    Object.assign(this.facts, await gatherFacts({
      uplink: this.facts.uplink, mtuConfigured: false, tools: this.tools, ...(this.mode.objects ? { objects: this.mode.objects(nc) } : {}),
    }, this.runner));
    this.facts.hostPid = process.pid;
    if (this.mode.inspect) this.metrics.beforeCollect = () => this.inspectNode();
  }

  /** The mode's operator view of this node, into the metrics (on every scrape). */
  private async inspectNode(): Promise<void> {
    const inspect = this.mode.inspect!;
    const nc = this.cfg.networkConfig;
    try {
      this.metrics.setModeGauges((await inspectWith(inspect, nc, this.facts, this.runner, this.sys)).gauges);
    } catch (e) {
      this.log.warn('node inspection failed', { error: (e as Error).message });
    }
  }

  private self(): NodeRecord {
    return { name: this.cfg.nodeName, underlayIp: this.cfg.underlayIp, block: this.ipam?.block ?? '' };
  }

  isReady(): boolean {
    // A lapsed registration does not stop allocations (it only matters to other nodes' routes,
    // which keep them for the grace period): ready once registered, while etcd answers.
    return this.registered !== null && this.ipam !== null && this.etcdUp;
  }

  private notReadyReason(): string {
    if (!this.etcdUp) return `etcd unreachable (${this.cfg.etcd.endpoints.join(',')})`;
    if (!this.ipam) return 'no block claimed yet';
    if (!this.registered) return 'node registration pending';
    return '';
  }

  async start(): Promise<void> {
    // The API answers from the first moment, "not ready" included: the plugin gets code 11
    // rather than a refused connection while the agent comes up.
    const api = apiServer(this, this.metrics, (e) => this.log.error('api handler failed', { error: String(e) }));
    await listenUnix(api, this.cfg.socket);
    this.servers.push(api);
    if (this.cfg.metricsAddress) {
      const [host, port] = splitHostPort(this.cfg.metricsAddress);
      const m = metricsServer(this.metrics, () => this.isReady());
      await new Promise<void>((resolve, reject) => {
        m.once('error', reject);
        m.listen(port, host, resolve);
      });
      this.servers.push(m);
    }
    this.log.info('agent api listening', { socket: this.cfg.socket, metrics: this.cfg.metricsAddress });
    await this.gatherFacts();
    await this.joinCluster();
    if (this.stopped) return;
    this.timers.push(setInterval(() => void this.healthCheck(), HEALTH_INTERVAL_MS));
    this.timers.push(setInterval(() => void this.resync(), this.cfg.resyncSeconds * 1000));
    await this.reconciler.runNow();
    this.maybeWriteCniConfig();
  }

  /** Connect, claim the block, load its reservations, register, list and watch nodes. */
  private async joinCluster(): Promise<void> {
    let wait = 100;
    while (!this.stopped) {
      try {
        await this.store.ping();
        this.setEtcd(true);
        // A mode on the node network (ipvlan, macvlan) has one range for every node, no blocks.
        const shared = this.mode.addressing.pool === 'subnet';
        const net = this.cfg.networkConfig;
        const block = shared ? net.ipam.block : await this.store.claimBlock(this.cfg.nodeName, this.cfg.clusterSubnet, this.cfg.blockSize);
        const ipam = new IpamService(this.store, this.cfg.nodeName, block, shared ? poolOf(net.ipam) : undefined);
        await ipam.load();
        this.ipam = ipam;
        await this.register();
        // List, then watch from the revision after the listing: a node registering in between
        // (one starting at the same time as this one) is never missed.
        const listing = await this.store.nodesAt();
        this.applyListing(listing);
        this.watcher = await this.store.watchNodes(
          (e) => {
            if (this.members.apply(e)) this.membershipChanged();
          },
          (connected) => this.log.info(connected ? 'registry watch connected' : 'registry watch disconnected'),
          listing.revision + 1,
        );
        this.log.info('joined the cluster', { node: this.cfg.nodeName, block, underlayIp: this.cfg.underlayIp });
        return;
      } catch (e) {
        if (e instanceof BlocksExhausted) throw e;
        this.setEtcd(!(e instanceof DatastoreUnavailable));
        this.log.warn('cannot join the cluster yet', { error: (e as Error).message, retryMs: wait });
        await sleep(wait);
        wait = Math.min(wait * 2, 2000);
      }
    }
  }

  private async register(): Promise<void> {
    await this.store.register(this.self(), this.cfg.leaseTtlSeconds, (err) => {
      this.leaseLost = true;
      this.log.warn('node registration lease lost', { error: err.message });
      void this.healthCheck(); // register again now, not at the next tick
    });
    this.leaseLost = false;
    this.registered = new Date().toISOString();
    this.metrics.ready.set(this.isReady() ? 1 : 0);
  }

  private setEtcd(up: boolean): void {
    if (up !== this.etcdUp) this.log.info(up ? 'etcd reachable' : 'etcd unreachable');
    this.etcdUp = up;
    this.lastCheck = new Date().toISOString();
    this.metrics.etcdUp.set(up ? 1 : 0);
    this.metrics.ready.set(this.isReady() ? 1 : 0);
  }

  private checking = false;

  private async healthCheck(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      await this.store.ping();
      this.setEtcd(true);
      if (this.leaseLost && this.ipam) {
        await this.register();
        this.log.info('node re-registered');
        await this.resync();
      }
    } catch {
      this.setEtcd(false);
    } finally {
      this.checking = false;
    }
    this.metrics.ready.set(this.isReady() ? 1 : 0);
    this.maybeWriteCniConfig();
  }

  /** Takes a registry listing, unless the watch has already brought a newer state. */
  private applyListing(listing: { nodes: NodeRecord[]; revision: number }): void {
    if (this.members.applyListing(listing)) this.membershipChanged();
  }

  /** Reconciles now, and again when the grace of a departed node ends. */
  private membershipChanged(): void {
    if (this.stopped) return; // a watch event while stopping must not arm a new timer
    this.generation++;
    this.metrics.knownNodes.set(this.members.registered().length);
    this.reconciler.schedule();
    const wait = this.members.nextExpiry();
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = wait === null ? null : setTimeout(() => this.membershipChanged(), wait + 10);
  }

  /** Re-lists the registry (a watch can miss events across reconnects) and reconciles. */
  private async resync(): Promise<void> {
    try {
      this.applyListing(await this.store.nodesAt());
    } catch (e) {
      // Keep the routes we have: an unreachable datastore says nothing about the nodes.
      this.log.warn('registry resync failed', { error: (e as Error).message });
      return;
    }
    await this.reconciler.runNow();
  }

  private maybeWriteCniConfig(): void {
    if (this.cniConfWritten || !this.cfg.cniConfDir || !this.isReady()) return;
    writeCniConfig(this.cfg);
    this.cniConfWritten = true;
    this.log.info('CNI config written', { path: join(this.cfg.cniConfDir, this.cfg.cniConfName) });
  }

  private requireReady(): IpamService {
    if (!this.isReady() || !this.ipam) throw new ApiFailure(503, { code: 11, msg: 'node agent not ready', details: this.notReadyReason() });
    return this.ipam;
  }

  /** Maps datastore and pool failures to the API's status and CNI code. */
  private async guard<T>(what: string, fn: (ipam: IpamService) => Promise<T>): Promise<T> {
    const ipam = this.requireReady();
    try {
      return await fn(ipam);
    } catch (e) {
      if (e instanceof DatastoreUnavailable) {
        this.setEtcd(false);
        throw new ApiFailure(503, { code: 11, msg: `${what}: datastore unavailable`, details: e.message });
      }
      if (e instanceof PoolExhausted) throw new ApiFailure(409, { code: 100, msg: 'address pool exhausted', details: e.message });
      throw e;
    }
  }

  async allocate(key: AttachmentKey): Promise<Lease> {
    const started = performance.now();
    try {
      const lease = await this.guard('allocate', (ipam) => withTimeout(ipam.allocate(key), this.cfg.etcd.requestTimeoutMs * 2, 'allocate'));
      this.metrics.allocations.inc({ result: 'ok' });
      return lease;
    } catch (e) {
      this.metrics.allocations.inc({ result: e instanceof ApiFailure && e.body.code === 100 ? 'exhausted' : 'error' });
      throw e;
    } finally {
      this.metrics.allocationSeconds.observe((performance.now() - started) / 1000);
    }
  }

  async release(key: AttachmentKey): Promise<string[]> {
    try {
      const r = await this.guard('release', (ipam) => ipam.release(key));
      this.metrics.releases.inc({ result: 'ok' });
      return r;
    } catch (e) {
      this.metrics.releases.inc({ result: 'error' });
      throw e;
    }
  }

  find(key: AttachmentKey): Promise<string | null> {
    return this.guard('find', (ipam) => ipam.find(key));
  }

  gc(valid: AttachmentKey[]): Promise<string[]> {
    return this.guard('gc', (ipam) => ipam.gc(valid));
  }

  status(): AgentStatus {
    const ready = this.isReady();
    return {
      ready,
      ...(ready ? {} : { reason: this.notReadyReason() }),
      node: this.cfg.nodeName,
      underlayIp: this.cfg.underlayIp,
      block: this.ipam?.block ?? null,
      gateway: this.ipam ? formatIp(this.ipam.pool.gateway) : null,
      etcd: { endpoints: this.cfg.etcd.endpoints, reachable: this.etcdUp, lastCheck: this.lastCheck },
      ipam: this.ipam?.stats() ?? null,
      nodes: this.members.registered().sort((a, b) => a.name.localeCompare(b.name)).map((n) => ({ name: n.name, underlayIp: n.underlayIp, block: n.block })),
      leaving: this.members.leavingNames(),
      routes: this.reconciler.routes,
      lastReconcile: this.reconciler.last,
      converged: this.reconciler.converged(),
      mode: this.cfg.networkConfig.mode,
      registeredAt: this.registered,
      registrationLapsed: this.leaseLost,
      version: AGENT_VERSION,
    };
  }

  /** The status with the node daemons and their peer sessions (asked now). */
  async detailedStatus(): Promise<AgentStatus> {
    const st = this.status();
    const daemons = await this.reconciler.daemonStatus();
    return daemons.length > 0 ? { ...st, daemons } : st;
  }

  /** Stops serving. The registration is left to expire, and this node's routes stay in the
   *  kernel: a restart within the lease keeps every pod reachable. The node's daemons stop
   *  for a restart too (BIRD: graceful restart, peers keep this node's routes meanwhile). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.reconciler.stop();
    await this.reconciler.stopDaemons('restart');
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    removeIfExists(this.cfg.socket);
    try {
      await this.watcher?.cancel();
    } catch { /* closing anyway */ }
    this.store.close();
  }
}

function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  const port = Number(addr.slice(i + 1));
  if (i < 0 || !Number.isInteger(port)) throw new Error(`metrics address ${addr} is not host:port`);
  return [addr.slice(0, i) || '0.0.0.0', port];
}
