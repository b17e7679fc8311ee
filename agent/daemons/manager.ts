// The node daemons a mode's node plan declares (NodePlanner.daemons), kept as declared: one
// supervisor per daemon name; each run renders the configuration (templates/, here in the agent:
// the plugin never loads the renderer), has the supervisor check, write and reload it when it
// changed, starts a daemon that is not running, asks a running one to refresh when the node plan
// changed the node, and stops daemons no longer declared. Mode-agnostic: nothing here knows BIRD.
import type { Logger } from '../../lib/log.ts';
import type { Runner } from '../../executor/runner.ts';
import type { DaemonSpec, DaemonStatus, PeerSession } from '../../model/daemon.ts';
import { renderTemplate } from '../../planner/templates.ts';
import { DaemonSupervisor, type Backoff, type DaemonProgram } from './supervisor.ts';

export interface NodeDaemonsOptions {
  runner: Runner;
  log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  /** the mode's parser of a daemon's status output (NodePlanner.sessions) */
  sessions?: (daemon: string, output: string) => PeerSession[];
  backoff?: Partial<Backoff>;
  /** renders a configuration (default: the templates of templates/) */
  render?: (template: string, view: unknown) => string;
}

function programOf(spec: DaemonSpec): DaemonProgram {
  const { config, recover: _recover, ...rest } = spec;
  return { ...rest, configPath: config.path };
}

export class NodeDaemons {
  private readonly sups = new Map<string, DaemonSupervisor>();
  /** the program each supervisor was made for, to tell when it changed */
  private readonly programs = new Map<string, string>();
  private stopped = false;

  constructor(private readonly o: NodeDaemonsOptions) {}

  names(): string[] {
    return [...this.sups.keys()].sort();
  }

  supervisor(name: string): DaemonSupervisor | null {
    return this.sups.get(name) ?? null;
  }

  /**
   * Makes the running daemons what `specs` declare. `nodeChanged`: the node plan changed the
   * node in this run (a daemon that was running already is asked to refresh). Every daemon is
   * tried; the first error is thrown at the end.
   */
  async sync(specs: DaemonSpec[], opts: { nodeChanged: boolean }): Promise<void> {
    if (this.stopped) return;
    const errors: Error[] = [];
    const wanted = new Set(specs.map((s) => s.name));
    for (const [name, sup] of this.sups) {
      if (wanted.has(name)) continue;
      await sup.stop('leave');
      this.sups.delete(name);
      this.programs.delete(name);
      this.o.log.info('daemon no longer needed: stopped', { daemon: name });
    }
    for (const spec of specs) {
      try {
        await this.syncOne(spec, opts.nodeChanged);
      } catch (e) {
        errors.push(e as Error);
      }
    }
    if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('; '));
  }

  private async syncOne(spec: DaemonSpec, nodeChanged: boolean): Promise<void> {
    const program = programOf(spec);
    const key = JSON.stringify(program);
    let sup = this.sups.get(spec.name);
    if (sup && this.programs.get(spec.name) !== key) {
      // Its command line or paths changed: a new instance takes them.
      this.o.log.info('daemon program changed: restarting it', { daemon: spec.name });
      await sup.stop('restart');
      sup = undefined;
    }
    const first = !sup;
    if (!sup) {
      sup = new DaemonSupervisor({ program, runner: this.o.runner, log: this.o.log, ...(this.o.backoff ? { backoff: this.o.backoff } : {}) });
      this.sups.set(spec.name, sup);
      this.programs.set(spec.name, key);
    }
    const text = (this.o.render ?? renderTemplate)(spec.config.template, spec.config.view);
    await sup.apply(text, spec.config.secrets);
    if (sup.pid === null) {
      await sup.start({ recovery: first && spec.recover });
      return;
    }
    if (nodeChanged) await sup.refresh();
  }

  /** Each daemon's state and, when the mode reads them, its peer sessions (asked now). */
  async status(): Promise<DaemonStatus[]> {
    return Promise.all(this.names().map(async (name) => {
      const sup = this.sups.get(name)!;
      const st = sup.status();
      let sessions: PeerSession[] | null = null;
      let sessionsError: string | undefined;
      if (this.o.sessions && st.running) {
        try {
          const out = await sup.statusOutput();
          sessions = out === null ? null : this.o.sessions(name, out);
        } catch (e) {
          sessionsError = (e as Error).message;
        }
      }
      return { name, ...st, sessions, ...(sessionsError ? { sessionsError } : {}) };
    }));
  }

  /** Stops every daemon; none starts again. `restart`: the agent restarts (graceful stop). */
  async stop(how: 'leave' | 'restart'): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.sups.values()].map((s) => s.stop(how).catch((e: Error) => this.o.log.warn('daemon stop failed', { daemon: s.name, error: e.message }))));
  }
}
