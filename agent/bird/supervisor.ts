// Runs one node's BIRD: its own config file, control socket and pid file, so several simulated
// nodes share a machine. A new configuration is checked with `bird -p` before it replaces the
// file (atomically; 0600 when it holds a password), and BIRD re-reads it (`birdc configure`)
// only when the text changed. A BIRD that dies is started again after a bounded backoff; stop()
// ends it. BIRD's output goes to its log file, never to the agent's or the plugin's stdout.
import { readFileSync, writeFileSync, renameSync, chmodSync, unlinkSync } from 'node:fs';
import type { Logger } from '../../lib/log.ts';
import { startDaemon, tail, type Runner } from '../../executor/runner.ts';
import { findTool } from '../../executor/facts.ts';
import { pidAlive, stopPid } from '../../lib/process.ts';
import { inNetnsArgv } from '../../lib/netns.ts';
import { Birdc } from './birdc.ts';
import { KERNEL_PROTOCOL } from '../../planner/bird/view.ts';

export interface BirdPaths {
  config: string;
  socket: string;
  pidFile: string;
  /** BIRD's stdout and stderr (its `log stderr`) */
  logFile: string;
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
  /** a BIRD that ran this long before dying restarts after initialMs again */
  stableMs: number;
}

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

export type ApplyOutcome = 'unchanged' | 'written' | 'reloaded';

export interface BirdSupervisorStatus {
  running: boolean;
  pid: number | null;
  startedAt: string | null;
  reloads: number;
  restarts: number;
  lastReloadAt: string | null;
  lastError: string | null;
  config: string;
  socket: string;
}

export class BirdConfigInvalid extends Error {}

const DEFAULT_BACKOFF: Backoff = { initialMs: 200, maxMs: 10_000, stableMs: 30_000 };
const STOP_GRACE_MS = 5000;

interface Child {
  pid: number;
  startedAt: number;
  exited: Promise<void>;
  /** answered on its socket once: only then does its death call for a restart */
  ready: boolean;
}

export class BirdSupervisor {
  readonly birdc: Birdc;
  private readonly bird: string;
  private readonly nsenter: string;
  private readonly backoff: Backoff;
  private child: Child | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  /** the file's text as last written or read; undefined until first looked at */
  private onDisk: string | null | undefined = undefined;
  /** the file changed while BIRD ran and BIRD has not taken it yet */
  private reloadPending = false;
  private wanted = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private nextBackoffMs: number;
  private secrets: string[] = [];
  private _reloads = 0;
  private _restarts = 0;
  private lastReloadAt: string | null = null;
  private lastError: string | null = null;

  constructor(private readonly o: BirdSupervisorOptions) {
    this.bird = o.tools?.bird ?? findTool('bird');
    this.nsenter = o.tools?.nsenter ?? findTool('nsenter');
    this.birdc = new Birdc(o.paths.socket, o.runner, o.tools?.birdc ?? findTool('birdc'));
    this.backoff = { ...DEFAULT_BACKOFF, ...o.backoff };
    this.nextBackoffMs = this.backoff.initialMs;
  }

  /** `birdc configure` runs that succeeded */
  get reloads(): number {
    return this._reloads;
  }

  /** times BIRD was started again after it died */
  get restarts(): number {
    return this._restarts;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  status(): BirdSupervisorStatus {
    return {
      running: this.child !== null,
      pid: this.pid,
      startedAt: this.child ? new Date(this.child.startedAt).toISOString() : null,
      reloads: this._reloads,
      restarts: this._restarts,
      lastReloadAt: this.lastReloadAt,
      lastError: this.lastError,
      config: this.o.paths.config,
      socket: this.o.paths.socket,
    };
  }

  /**
   * Makes `text` BIRD's configuration: checked, written, and taken by a running BIRD. `secrets`
   * (the passwords in the text) set the file's mode to 0600 and are blanked in every message.
   */
  apply(text: string, secrets: string[] = []): Promise<ApplyOutcome> {
    return this.serial(() => this.applyNow(text, secrets));
  }

  /**
   * Starts BIRD on the applied configuration and waits until it answers on its socket.
   * `recovery`: after an agent restart, when the kernel still holds routes of the BIRD before.
   */
  start(opts: { recovery?: boolean } = {}): Promise<void> {
    return this.serial(async () => {
      this.wanted = true;
      if (this.child) return;
      if (this.readConfig() === null) throw new Error(`no BIRD configuration at ${this.o.paths.config}: apply one first`);
      await this.takeOverStale();
      try {
        await this.spawn(opts.recovery === true);
      } catch (e) {
        this.wanted = false;
        throw e;
      }
    });
  }

  /**
   * Stops BIRD and keeps it stopped. `leave`: a clean shutdown, peers withdraw this node's
   * routes at once. `restart` (the agent restarts): BIRD shuts down for graceful restart, peers
   * keep the routes until a BIRD started with -R is back. This node's kernel keeps BIRD's
   * routes either way (`persist`). SIGKILL after a grace.
   */
  stop(how: 'leave' | 'restart' = 'leave'): Promise<void> {
    return this.serial(async () => {
      this.wanted = false;
      if (this.restartTimer) clearTimeout(this.restartTimer);
      this.restartTimer = null;
      const child = this.child;
      if (!child) return;
      await this.kill(child, how);
      this.o.log.info('bird stopped', { pid: child.pid, how });
    });
  }

  /**
   * Installs BIRD's routes in the kernel again. BIRD drops a route whose filter names a tunnel
   * device that does not exist yet ("Invalid iface name") and does not try it again when the
   * device appears: call this after creating (or re-creating) the tunnel device.
   */
  refreshKernelRoutes(): Promise<void> {
    return this.serial(async () => {
      if (this.child) await this.birdc.reloadOut(KERNEL_PROTOCOL);
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private redact(text: string): string {
    return this.secrets.reduce((acc, s) => (s ? acc.split(s).join('***') : acc), text);
  }

  private readConfig(): string | null {
    if (this.onDisk === undefined) {
      try {
        this.onDisk = readFileSync(this.o.paths.config, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        this.onDisk = null;
      }
    }
    return this.onDisk;
  }

  private async applyNow(text: string, secrets: string[]): Promise<ApplyOutcome> {
    this.secrets = secrets.filter((s) => s.length > 0);
    if (text === this.readConfig() && !this.reloadPending) return 'unchanged';
    if (text !== this.onDisk) {
      await this.writeChecked(text);
      this.reloadPending = this.child !== null;
    }
    if (!this.child) return 'written';
    try {
      await this.birdc.configure();
    } catch (e) {
      this.lastError = this.redact((e as Error).message);
      this.o.log.error('bird reconfigure failed', { error: this.lastError });
      throw new Error(this.lastError);
    }
    this.reloadPending = false;
    this._reloads++;
    this.lastReloadAt = new Date().toISOString();
    this.o.log.info('bird reconfigured', { config: this.o.paths.config, reloads: this._reloads });
    return 'reloaded';
  }

  /** Writes a temporary file, lets `bird -p` parse it, then renames it over the config. */
  private async writeChecked(text: string): Promise<void> {
    const { config } = this.o.paths;
    const mode = this.secrets.length > 0 ? 0o600 : 0o644;
    const tmp = `${config}.tmp-${process.pid}`;
    writeFileSync(tmp, text, { mode });
    chmodSync(tmp, mode); // an older temporary file keeps its mode through writeFileSync
    const r = await this.o.runner.run([this.bird, '-p', '-c', tmp]);
    if (r.exitCode !== 0) {
      try {
        unlinkSync(tmp);
      } catch { /* gone already */ }
      this.lastError = this.redact(`bird -p refused the new configuration: ${tail(r.stderr || r.stdout)}`);
      this.o.log.error('bird configuration refused', { error: this.lastError });
      throw new BirdConfigInvalid(this.lastError);
    }
    renameSync(tmp, config);
    this.onDisk = text;
    this.o.log.info('bird configuration written', { config, mode: mode.toString(8) });
  }

  /** A BIRD left running with our socket by an earlier agent (one that was killed) is ended. */
  private async takeOverStale(): Promise<void> {
    let pid: number;
    try {
      pid = Number(readFileSync(this.o.paths.pidFile, 'utf8').trim());
    } catch {
      return;
    }
    if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return;
    let cmdline: string[];
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      return;
    }
    if (!cmdline.includes(this.o.paths.socket)) return;
    this.o.log.warn('stopping a BIRD left running on this socket', { pid, socket: this.o.paths.socket });
    await stopPid(pid, STOP_GRACE_MS);
  }

  private argv(recovery: boolean): string[] {
    const { config, socket, pidFile } = this.o.paths;
    const bird = [this.bird, '-f', '-c', config, '-s', socket, '-P', pidFile, ...(recovery ? ['-R'] : [])];
    return this.o.netns ? inNetnsArgv(this.nsenter, this.o.netns, bird) : bird;
  }

  private async spawn(recovery: boolean): Promise<void> {
    let exitedResolve!: () => void;
    const exited = new Promise<void>((r) => (exitedResolve = r));
    let child: Child | null = null;
    const pid = await startDaemon(this.argv(recovery), {
      logFile: this.o.paths.logFile,
      onExit: (code, signal) => {
        exitedResolve();
        if (child) this.onExit(child, code, signal);
      },
    });
    child = { pid, startedAt: Date.now(), exited, ready: false };
    this.child = child;
    this.reloadPending = false; // a new BIRD reads the file as it is now
    const deadline = Date.now() + (this.o.readyTimeoutMs ?? 10_000);
    let gone = false;
    void exited.then(() => (gone = true));
    while (!(await this.birdc.answers())) {
      if (gone || Date.now() > deadline) {
        await this.kill(child);
        this.lastError = this.redact(`BIRD ${gone ? 'exited' : 'did not answer'} after start: ${tail(logTail(this.o.paths.logFile))}`);
        throw new Error(this.lastError);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    child.ready = true;
    this.o.log.info('bird started', { pid, socket: this.o.paths.socket, config: this.o.paths.config });
  }

  private async kill(child: Child, how: 'leave' | 'restart' = 'leave'): Promise<void> {
    if (this.child === child) this.child = null;
    // A timer that keeps the event loop alive: the child itself is unref'd.
    const exitedWithin = (ms: number) =>
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        void child.exited.then(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    if (how === 'restart' && (await this.birdc.gracefulRestart()) && (await exitedWithin(STOP_GRACE_MS))) return;
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch { /* gone */ }
    if (await exitedWithin(STOP_GRACE_MS)) return;
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch { /* gone */ }
    while (!(await exitedWithin(1000))) { /* SIGKILL always ends it */ }
  }

  private onExit(child: Child, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return; // stopped or replaced on purpose
    this.child = null;
    if (!this.wanted || !child.ready) return; // a start that fails is reported by spawn()
    const ranMs = Date.now() - child.startedAt;
    if (ranMs >= this.backoff.stableMs) this.nextBackoffMs = this.backoff.initialMs;
    const wait = this.nextBackoffMs;
    this.nextBackoffMs = Math.min(this.nextBackoffMs * 2, this.backoff.maxMs);
    this.lastError = `BIRD exited (code ${code}, signal ${signal}) after ${Math.round(ranMs)} ms`;
    this.o.log.warn('bird exited; restarting', { pid: child.pid, code, signal, restartInMs: wait });
    this.scheduleRestart(wait);
  }

  private scheduleRestart(waitMs: number): void {
    if (this.restartTimer) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      void this.serial(async () => {
        if (!this.wanted || this.child) return;
        try {
          await this.spawn(this.o.gracefulRestart !== false);
          this._restarts++;
        } catch (e) {
          const wait = this.nextBackoffMs;
          this.nextBackoffMs = Math.min(this.nextBackoffMs * 2, this.backoff.maxMs);
          this.o.log.error('bird restart failed', { error: (e as Error).message, retryInMs: wait });
          this.scheduleRestart(wait);
        }
      });
    }, waitMs);
  }
}

function logTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-5).join('\n');
  } catch {
    return '(no log)';
  }
}
