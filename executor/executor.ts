// Applies plans: probe -> apply -> journal, batching steps into as few processes as it can;
// rolls a failed ADD back; tears attachments down tolerantly; re-runs probes for CHECK.
import { HOST, type Plan, type Step, type NodeFacts } from '../model/plan.ts';
import type { Lease } from '../model/lease.ts';
import { teardownSteps } from '../planner/compile.ts';
import { holds } from '../planner/predicate.ts';
import { CniError, Code, type CniCode } from '../model/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { Runner } from './runner.ts';
import { JournalStore, newJournal, type Journal } from './journal.ts';
import { runProbe, fastProbe } from './probe.ts';
import { realSystem, type NodeSystem } from './system.ts';
import { canJoin, unitOf, type Unit } from './units.ts';
import { ApplyRun } from './apply-run.ts';
import { MECHANISMS, type StepOutcome } from './mechanisms/index.ts';

export interface ExecContext {
  runner: Runner;
  facts: NodeFacts;
  journals: JournalStore;
  log?: Logger;
  /** in-process access to the node; the real one unless a test gives another */
  sys?: NodeSystem;
}

export interface StepFailure {
  step: string;
  argv: string[];
  exitCode: number;
  stderr: string;
}

export interface TeardownReport {
  undone: string[];
  errors: StepFailure[];
}

export interface Drift {
  step: string;
  describe: string;
}

/** What a step runs, for error reports. */
function commandOf(step: Step): string[] {
  if (step.mech === 'file') return ['write', step.path];
  if (step.mech === 'wait') return ['wait', ...step.links];
  return step.argv;
}

function describeFailures(fs: StepFailure[]): string {
  return fs.map((f) => `${f.step}: \`${f.argv.join(' ')}\` exited ${f.exitCode}: ${f.stderr}`).join('; ');
}

export class Executor {
  private readonly sys: NodeSystem;

  constructor(private readonly ctx: ExecContext) {
    this.sys = ctx.sys ?? realSystem;
  }

  private probe(p: NonNullable<Step['probe']>): Promise<boolean> {
    return runProbe(p, this.ctx.facts, this.ctx.runner, this.sys);
  }

  /** Runs one unit through its mechanism. `force`: keep going past a failed step. */
  private runUnit(unit: Unit, force: boolean): Promise<Map<string, StepOutcome>> {
    return MECHANISMS[unit.mech].run(unit.steps, unit.ns, { runner: this.ctx.runner, facts: this.ctx.facts, sys: this.sys, log: this.ctx.log }, { force });
  }

  /** Applies an ADD plan. On failure it rolls back and throws a CniError; the journal says what
   *  happened. Whatever fails (a step, a journal write on a full disk, a mechanism), the caller
   *  gets a CniError, and 102 (RollbackIncomplete) unless everything applied was undone: only
   *  then may the caller hand the address back. */
  async apply(plan: Plan, lease: Lease | null): Promise<Journal> {
    const j = newJournal(plan, lease);
    try {
      this.ctx.journals.write(j);
    } catch (e) {
      throw new CniError(Code.IoFailure, 'the journal could not be written', `${(e as Error).message}; nothing was applied`);
    }
    const inFlight = new Set<string>();
    try {
      return await this.applySteps(plan, j, inFlight);
    } catch (e) {
      if (e instanceof CniError) throw e; // a step failed: rolled back already
      // [hardening] Not a step: the journal (ENOSPC, a short write) or the executor itself.
      // Steps of the unit that was running may have taken effect: undo them too.
      for (const id of inFlight) if (j.steps[id]?.status === 'pending') j.steps[id] = { status: 'unknown' };
      const cause = { step: 'journal', argv: ['append', this.ctx.journals.path(j)], exitCode: -1, stderr: (e as Error)?.message ?? String(e) };
      try {
        return await this.rollback(j, [cause], (e as NodeJS.ErrnoException)?.syscall ? Code.IoFailure : Code.Internal);
      } catch (r) {
        if (r instanceof CniError) throw r;
        throw new CniError(Code.RollbackIncomplete, 'rollback could not run', `${cause.stderr}; then: ${(r as Error)?.message ?? r}`);
      }
    }
  }

  private async applySteps(plan: Plan, j: Journal, inFlight: Set<string>): Promise<Journal> {
    const run = new ApplyRun(j, this.ctx.journals, inFlight, {
      runUnit: (unit) => this.runUnit(unit, false),
      probe: (p) => this.probe(p),
      rollback: (failures) => this.rollback(j, failures),
    });
    for (const step of plan.steps) await run.add(step);
    await run.flush();
    run.finish();
    return j;
  }

  private async rollback(j: Journal, failures: StepFailure[], code: CniCode = Code.StepFailed): Promise<never> {
    const applied = new Set(Object.entries(j.steps).filter(([, r]) => r.status === 'applied' || r.status === 'unknown').map(([id]) => id));
    const report = await this.teardown(teardownSteps(j.plan.steps, applied));
    for (const id of report.undone) {
      const fwd = id.replace(/^undo:/, '');
      if (j.steps[fwd]) j.steps[fwd]!.status = 'undone';
    }
    const complete = report.errors.length === 0;
    j.state = complete ? 'rolled-back' : 'rollback-incomplete';
    j.error = describeFailures(failures);
    const kept = this.recordRollback(j, complete);
    const rollback = complete
      ? `rollback complete (${report.undone.length} undone)`
      : `rollback incomplete: ${describeFailures(report.errors)}`;
    throw new CniError(
      complete ? code : Code.RollbackIncomplete,
      failures[0]!.step === 'journal' ? 'the journal could not be written' : `step ${failures[0]!.step} failed`,
      `${describeFailures(failures)}; ${rollback}${kept}`,
    );
  }

  /** [hardening] Writes the rolled-back journal; on a full disk a complete rollback removes it
   *  instead (no journal means the same: nothing applied), an incomplete one leaves the last
   *  record, whose undo list covers at least what is left. Returns a note for the error. */
  private recordRollback(j: Journal, complete: boolean): string {
    try {
      this.ctx.journals.write(j);
      return '';
    } catch (e) {
      if (!complete) return `; journal not updated (${(e as Error).message})`;
      try {
        this.ctx.journals.remove(j);
        return '';
      } catch {
        return `; journal not updated (${(e as Error).message})`;
      }
    }
  }

  /** Runs undo steps best effort: every one is tried, and "already gone" counts as done. */
  teardown(steps: Step[]): Promise<TeardownReport> {
    return this.bestEffort(steps);
  }

  /** Node-level convergence (routes to other nodes): every step is tried, none rolled back;
   *  a step whose probe says it is in effect counts as done. */
  converge(steps: Step[]): Promise<TeardownReport> {
    return this.bestEffort(steps);
  }

  /** Each step is tried; one that fails while its probe holds was already in effect. */
  private async bestEffort(steps: Step[]): Promise<TeardownReport> {
    const undone: string[] = [];
    const errors: StepFailure[] = [];
    const units: Unit[] = [];
    for (const step of steps) {
      if (!this.sys.nsExists(step.ns)) {
        undone.push(step.id);
        continue;
      }
      const fast = step.probe ? fastProbe(step.probe, this.sys) : null;
      if (fast && holds(step.probe!.expect, fast)) {
        undone.push(step.id);
        continue;
      }
      const last = units[units.length - 1];
      if (last && canJoin(last, step)) last.steps.push(step);
      else units.push(unitOf(step));
    }
    for (const unit of units) {
      const outcomes = await this.runUnit(unit, true);
      for (const step of unit.steps) {
        const o = outcomes.get(step.id);
        if (o?.status === 'applied') {
          undone.push(step.id);
        } else if (step.probe && (await this.probe(step.probe))) {
          undone.push(step.id); // it failed because there was nothing left to undo
        } else {
          errors.push({ step: step.id, argv: o?.argv ?? commandOf(step), exitCode: o?.exitCode ?? -1, stderr: o?.stderr ?? 'not run' });
        }
      }
    }
    return { undone, errors };
  }

  /** CHECK: every probe of the plan must still hold. */
  async check(plan: Plan): Promise<Drift[]> {
    const drift: Drift[] = [];
    for (const step of plan.steps) {
      if (!step.probe) continue;
      if (step.probe.ns !== HOST && !this.sys.nsExists(step.probe.ns)) {
        drift.push({ step: step.id, describe: `netns ${step.probe.ns} is gone` });
        continue;
      }
      if (!(await this.probe(step.probe))) drift.push({ step: step.id, describe: step.describe });
    }
    return drift;
  }
}
