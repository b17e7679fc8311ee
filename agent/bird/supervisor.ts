// One node's BIRD, run by the generic daemon supervisor (agent/daemons/supervisor.ts) with the
// commands of planner/bird/daemon.ts: its own config file, control socket and PID file, so
// several simulated nodes share a machine. The agent reaches BIRD through the daemons its mode's
// node plan declares; this wrapper is the same thing for callers that hold BIRD's text
// themselves (the BGP tests and bench/bgp.mjs), with birdc at hand.
import type { Logger } from '../../lib/log.ts';
import type { Runner } from '../../executor/runner.ts';
import { findTool } from '../../executor/facts.ts';
import { Birdc } from './birdc.ts';
import { birdDaemon, type BirdPaths } from '../../planner/bird/daemon.ts';
import { DaemonSupervisor, DaemonConfigInvalid, type ApplyOutcome, type Backoff, type SupervisorStatus } from '../daemons/supervisor.ts';

export type { BirdPaths, ApplyOutcome, Backoff };

export interface BirdSupervisorOptions {
  paths: BirdPaths;
  runner: Runner;
  log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  /** run BIRD in this network namespace (a simulated node); default: the agent's own */
  netns?: string | null;
  /**
   * Restart a BIRD that died with -R (graceful restart recovery): the routes it left in the
   * kernel stay until its sessions are back (default true). Recovery holds back kernel updates
   * until every session is up or the config's `graceful restart wait` passes, so a first start
   * uses it only when asked (start({ recovery: true }): the kernel already holds BIRD's routes).
   */
  gracefulRestart?: boolean;
  backoff?: Partial<Backoff>;
  /** how long a started BIRD may take to answer on its socket */
  readyTimeoutMs?: number;
  tools?: { bird?: string; birdc?: string; nsenter?: string };
}

export interface BirdSupervisorStatus extends SupervisorStatus {
  socket: string;
}

/** A configuration `bird -p` refused. */
export const BirdConfigInvalid = DaemonConfigInvalid;

export class BirdSupervisor {
  readonly birdc: Birdc;
  private readonly sup: DaemonSupervisor;

  constructor(private readonly o: BirdSupervisorOptions) {
    const tools = { bird: o.tools?.bird ?? findTool('bird'), birdc: o.tools?.birdc ?? findTool('birdc') };
    const { config: _config, recover: _recover, ...program } = birdDaemon(o.paths, tools, null);
    this.birdc = new Birdc(o.paths.socket, o.runner, tools.birdc);
    this.sup = new DaemonSupervisor({
      program: { ...program, configPath: o.paths.config },
      runner: o.runner,
      log: o.log,
      netns: o.netns ?? null,
      recoverOnRestart: o.gracefulRestart !== false,
      ...(o.backoff ? { backoff: o.backoff } : {}),
      ...(o.readyTimeoutMs ? { readyTimeoutMs: o.readyTimeoutMs } : {}),
      ...(o.tools?.nsenter ? { nsenter: o.tools.nsenter } : {}),
    });
  }

  /** `birdc configure` runs that succeeded */
  get reloads(): number {
    return this.sup.reloads;
  }

  /** times BIRD was started again after it died */
  get restarts(): number {
    return this.sup.restarts;
  }

  get pid(): number | null {
    return this.sup.pid;
  }

  status(): BirdSupervisorStatus {
    return { ...this.sup.status(), socket: this.o.paths.socket };
  }

  /** Checks (bird -p), writes and has BIRD take `text`; `secrets`: the passwords it holds. */
  apply(text: string, secrets: string[] = []): Promise<ApplyOutcome> {
    return this.sup.apply(text, secrets);
  }

  start(opts: { recovery?: boolean } = {}): Promise<void> {
    return this.sup.start(opts);
  }

  /** `leave`: peers withdraw this node's routes at once; `restart`: graceful restart. */
  stop(how: 'leave' | 'restart' = 'leave'): Promise<void> {
    return this.sup.stop(how);
  }

  /**
   * Installs BIRD's routes in the kernel again. BIRD drops a route whose filter names a tunnel
   * device that does not exist yet ("Invalid iface name") and does not try it again when the
   * device appears: call this after creating (or re-creating) the tunnel device.
   */
  async refreshKernelRoutes(): Promise<void> {
    await this.sup.refresh();
  }
}
