// Runs one node daemon as a DaemonSpec describes it: its own configuration file, PID file and
// log, so several simulated nodes share a machine. A new configuration is checked by the
// daemon's own validator before it replaces the file (atomically; 0600 when it holds a secret),
// and a running daemon is asked to reload only when the text changed (a failed reload is tried
// again by the next apply). A daemon that dies is started again after a bounded backoff, with
// its recovery arguments; stop() ends it. Its output goes to its log file only, never to the
// agent's or the plugin's stdout, and secrets are blanked from every message.
import { readFileSync, writeFileSync, renameSync, chmodSync, unlinkSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../../lib/log.ts';
import { startDaemon, tail, type Runner, type RunResult } from '../../executor/runner.ts';
import { findTool } from '../../executor/facts.ts';
import { pidAlive, stopPid } from '../../lib/process.ts';
import { inNetnsArgv } from '../../lib/netns.ts';
import { CONFIG_PATH_ARG, type DaemonCommand, type DaemonRunState, type DaemonSpec } from '../../model/daemon.ts';

export interface Backoff {
  initialMs: number;
  maxMs: number;
  /** a daemon that ran this long before dying restarts after initialMs again */
  stableMs: number;
}

/** What the supervisor takes of a spec: everything but the configuration's content. */
export type DaemonProgram = Omit<DaemonSpec, 'config' | 'recover'> & { configPath: string };

export interface DaemonSupervisorOptions {
  program: DaemonProgram;
  runner: Runner;
  log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  /** run the daemon in this network namespace (a simulated node); default: the agent's own */
  netns?: string | null;
  /** restart a daemon that died with its recovery arguments (default true) */
  recoverOnRestart?: boolean;
  backoff?: Partial<Backoff>;
  /** how long a started daemon may take to answer */
  readyTimeoutMs?: number;
  nsenter?: string;
  /** how long its commands (validate, ready, reload, ...) may take */
  commandTimeoutMs?: number;
}

export type ApplyOutcome = 'unchanged' | 'written' | 'reloaded';

export type SupervisorStatus = DaemonRunState;

/** A configuration the daemon's own validator refused. */
export class DaemonConfigInvalid extends Error {}

const DEFAULT_BACKOFF: Backoff = { initialMs: 200, maxMs: 10_000, stableMs: 30_000 };
const STOP_GRACE_MS = 5000;

interface Child {
  pid: number;
  startedAt: number;
  exited: Promise<void>;
  /** answered once: only then does its death call for a restart */
  ready: boolean;
}

/** True when the command exited 0 and its output shows what it must. */
export function commandSucceeded(cmd: DaemonCommand, r: RunResult): boolean {
  return r.exitCode === 0 && (cmd.expectStdout === undefined || new RegExp(cmd.expectStdout, 'm').test(r.stdout));
}

export class DaemonSupervisor {
  readonly name: string;
  private readonly nsenter: string;
  private readonly backoff: Backoff;
  private child: Child | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  /** the file's text as last written or read; undefined until first looked at */
  private onDisk: string | null | undefined = undefined;
  /** the file changed while the daemon ran and it has not taken it yet */
  private reloadPending = false;
  private wanted = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private nextBackoffMs: number;
  private secrets: string[] = [];
  private _reloads = 0;
  private _restarts = 0;
  private lastReloadAt: string | null = null;
  private lastError: string | null = null;

  constructor(private readonly o: DaemonSupervisorOptions) {
    this.name = o.program.name;
    this.nsenter = o.nsenter ?? findTool('nsenter');
    this.backoff = { ...DEFAULT_BACKOFF, ...o.backoff };
    this.nextBackoffMs = this.backoff.initialMs;
  }

  get program(): DaemonProgram {
    return this.o.program;
  }

  /** reloads that succeeded */
  get reloads(): number {
    return this._reloads;
  }

  /** times the daemon was started again after it died */
  get restarts(): number {
    return this._restarts;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  status(): SupervisorStatus {
    return {
      running: this.child !== null,
      pid: this.pid,
      startedAt: this.child ? new Date(this.child.startedAt).toISOString() : null,
      reloads: this._reloads,
      restarts: this._restarts,
      lastReloadAt: this.lastReloadAt,
      lastError: this.lastError,
      config: this.o.program.configPath,
    };
  }

  /**
   * Makes `text` the daemon's configuration: checked, written, and taken by a running daemon.
   * `secrets` (strings the text holds) make the file 0600 and are blanked in every message.
   */
  apply(text: string, secrets: string[] = []): Promise<ApplyOutcome> {
    return this.serial(() => this.applyNow(text, secrets));
  }

  /** Starts the daemon on the applied configuration and waits until it answers. `recovery`:
   *  the node still holds what an earlier instance made (an agent restart). */
  start(opts: { recovery?: boolean } = {}): Promise<void> {
    return this.serial(async () => {
      this.wanted = true;
      if (this.child) return;
      if (this.readConfig() === null) throw new Error(`no ${this.name} configuration at ${this.o.program.configPath}: apply one first`);
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
   * Stops the daemon and keeps it stopped. `leave`: a clean shutdown (peers drop what it gave
   * them at once). `restart` (the agent restarts): its graceful stop first, so peers keep it
   * until a recovering instance is back. SIGKILL after a grace.
   */
  stop(how: 'leave' | 'restart' = 'leave'): Promise<void> {
    return this.serial(async () => {
      this.wanted = false;
      if (this.restartTimer) clearTimeout(this.restartTimer);
      this.restartTimer = null;
      const child = this.child;
      if (!child) return;
      await this.kill(child, how);
      this.o.log.info(`${this.name} stopped`, { pid: child.pid, how });
    });
  }

  /** Runs the program's refresh command while it runs (see DaemonSpec.refresh); false when it
   *  does not run or has none. */
  refresh(): Promise<boolean> {
    return this.serial(async () => {
      const cmd = this.o.program.refresh;
      if (!this.child || !cmd) return false;
      const r = await this.run(cmd.argv);
      if (!commandSucceeded(cmd, r)) throw new Error(this.redact(`${this.name} refresh failed: \`${cmd.argv.join(' ')}\` exited ${r.exitCode}: ${tail(r.stdout + r.stderr)}`));
      return true;
    });
  }

  /** The program's status query's output, or null when it has none or does not run. */
  async statusOutput(): Promise<string | null> {
    const cmd = this.o.program.status;
    if (!cmd || !this.child) return null;
    const r = await this.run(cmd.argv);
    if (!commandSucceeded(cmd, r)) throw new Error(`${this.name} status query exited ${r.exitCode}: ${tail(r.stdout + r.stderr, 200)}`);
    return r.stdout;
  }

  private run(argv: string[]): Promise<RunResult> {
    return this.o.runner.run(argv, { timeoutMs: this.o.commandTimeoutMs ?? 10_000 });
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
        this.onDisk = readFileSync(this.o.program.configPath, 'utf8');
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
    const cmd = this.o.program.reload;
    const r = await this.run(cmd.argv);
    if (!commandSucceeded(cmd, r)) {
      this.lastError = this.redact(`${this.name} reload failed: \`${cmd.argv.join(' ')}\` exited ${r.exitCode}: ${tail(r.stdout + r.stderr)}`);
      this.o.log.error(`${this.name} reload failed`, { error: this.lastError });
      throw new Error(this.lastError);
    }
    this.reloadPending = false;
    this._reloads++;
    this.lastReloadAt = new Date().toISOString();
    this.o.log.info(`${this.name} reconfigured`, { config: this.o.program.configPath, reloads: this._reloads });
    return 'reloaded';
  }

  /** Writes a temporary file, lets the program's validator check it, then renames it over the config. */
  private async writeChecked(text: string): Promise<void> {
    const config = this.o.program.configPath;
    const mode = this.secrets.length > 0 ? 0o600 : 0o644;
    mkdirSync(dirname(config), { recursive: true, mode: 0o700 });
    const tmp = `${config}.tmp-${process.pid}`;
    writeFileSync(tmp, text, { mode });
    chmodSync(tmp, mode); // an older temporary file keeps its mode through writeFileSync
    const r = await this.run(this.o.program.validate.map((a) => (a === CONFIG_PATH_ARG ? tmp : a)));
    if (r.exitCode !== 0) {
      try {
        unlinkSync(tmp);
      } catch { /* gone already */ }
      this.lastError = this.redact(`${this.name} refused the new configuration: ${tail(r.stderr || r.stdout)}`);
      this.o.log.error(`${this.name} configuration refused`, { error: this.lastError });
      throw new DaemonConfigInvalid(this.lastError);
    }
    renameSync(tmp, config);
    this.onDisk = text;
    this.o.log.info(`${this.name} configuration written`, { config, mode: mode.toString(8) });
  }

  /** An instance left running by an earlier agent (one that was killed) is ended: it is ours when
   *  its PID file names it and its command line names that PID file. */
  private async takeOverStale(): Promise<void> {
    const { pidFile } = this.o.program;
    let pid: number;
    try {
      pid = Number(readFileSync(pidFile, 'utf8').trim());
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
    if (!cmdline.includes(pidFile)) return;
    this.o.log.warn(`stopping a ${this.name} an earlier agent left running`, { pid, pidFile });
    await stopPid(pid, STOP_GRACE_MS);
  }

  private argv(recovery: boolean): string[] {
    const argv = [...this.o.program.argv, ...(recovery ? this.o.program.recoverArgs : [])];
    return this.o.netns ? inNetnsArgv(this.nsenter, this.o.netns, argv) : argv;
  }

  private async answers(): Promise<boolean> {
    return (await this.run(this.o.program.ready)).exitCode === 0;
  }

  private async spawn(recovery: boolean): Promise<void> {
    let exitedResolve!: () => void;
    const exited = new Promise<void>((r) => (exitedResolve = r));
    let child: Child | null = null;
    const { logFile } = this.o.program;
    mkdirSync(dirname(logFile), { recursive: true, mode: 0o700 });
    mkdirSync(dirname(this.o.program.pidFile), { recursive: true, mode: 0o755 });
    const pid = await startDaemon(this.argv(recovery), {
      logFile,
      onExit: (code, signal) => {
        exitedResolve();
        if (child) this.onExit(child, code, signal);
      },
    });
    child = { pid, startedAt: Date.now(), exited, ready: false };
    this.child = child;
    this.reloadPending = false; // a new instance reads the file as it is now
    const deadline = Date.now() + (this.o.readyTimeoutMs ?? 10_000);
    let gone = false;
    void exited.then(() => (gone = true));
    while (!(await this.answers())) {
      if (gone || Date.now() > deadline) {
        await this.kill(child);
        this.lastError = this.redact(`${this.name} ${gone ? 'exited' : 'did not answer'} after start: ${tail(logTail(logFile))}`);
        throw new Error(this.lastError);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    child.ready = true;
    this.o.log.info(`${this.name} started`, { pid, config: this.o.program.configPath, recovery });
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
    const graceful = this.o.program.gracefulStop;
    if (how === 'restart' && graceful && commandSucceeded(graceful, await this.run(graceful.argv)) && (await exitedWithin(STOP_GRACE_MS))) return;
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
    this.lastError = `${this.name} exited (code ${code}, signal ${signal}) after ${Math.round(ranMs)} ms`;
    this.o.log.warn(`${this.name} exited; restarting`, { pid: child.pid, code, signal, restartInMs: wait });
    this.scheduleRestart(wait);
  }

  private scheduleRestart(waitMs: number): void {
    if (this.restartTimer) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      void this.serial(async () => {
        if (!this.wanted || this.child) return;
        try {
          await this.spawn(this.o.recoverOnRestart !== false);
          this._restarts++;
        } catch (e) {
          const wait = this.nextBackoffMs;
          this.nextBackoffMs = Math.min(this.nextBackoffMs * 2, this.backoff.maxMs);
          this.o.log.error(`${this.name} restart failed`, { error: (e as Error).message, retryInMs: wait });
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
