// Applies plans: probe -> apply -> journal, batching steps into as few processes as it can;
// rolls a failed ADD back; tears attachments down tolerantly; re-runs probes for CHECK.
import { HOST, type Plan, type Step, type NodeFacts } from '../model/plan.ts';
import type { Lease } from '../model/lease.ts';
import { teardownSteps } from '../planner/compile.ts';
import { holds } from '../planner/predicate.ts';
import { CniError, Code } from '../model/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { Runner } from './runner.ts';
import { JournalStore, newJournal, type Journal } from './journal.ts';
import { runProbe, fastProbe, isFast } from './probe.ts';
import { realSystem, type NodeSystem } from './system.ts';
import { canJoin, unitOf, type Unit } from './units.ts';
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

  /** Applies an ADD plan. On failure it rolls back and throws; the journal says what happened. */
  async apply(plan: Plan, lease: Lease | null): Promise<Journal> {
    const j = newJournal(plan, lease);
    this.ctx.journals.write(j);
    let unit: Unit | null = null;
    // Steps whose status changed since the journal last heard of them.
    const dirty = new Set<string>();
    const changed = () => {
      const steps = Object.fromEntries([...dirty].map((id) => [id, j.steps[id]!]));
      dirty.clear();
      return steps;
    };
    const record = () => this.ctx.journals.append(j, { steps: changed() });
    const flush = async () => {
      let pending = unit;
      unit = null;
      while (pending) {
        const done: Unit = pending;
        pending = null;
        const outcomes = await this.runUnit(done, false);
        for (const [id, o] of outcomes) {
          const { argv: _argv, ...rec } = o;
          j.steps[id] = rec;
        }
        const failures = [...outcomes.entries()].filter(([, o]) => o.status === 'failed' || o.status === 'unknown');
        for (const id of outcomes.keys()) dirty.add(id);
        if (failures.length === 0) {
          record();
          break;
        }
        // A concurrent ADD may have created a shared node object between our probe and our
        // command: that is the state we wanted, so carry on with the rest of the unit.
        const [failedId, failed] = failures[0]!;
        const step = done.steps.find((s) => s.id === failedId)!;
        if (failures.length === 1 && failed.status === 'failed' && step.scope === 'node' && step.probe && (await this.probe(step.probe))) {
          j.steps[failedId] = { status: 'skipped' };
          record();
          const rest = done.steps.slice(done.steps.indexOf(step) + 1);
          if (rest.length > 0) pending = { ...done, steps: rest };
          continue;
        }
        record();
        await this.rollback(j, failures.map(([id, o]) => ({ step: id, argv: o.argv ?? [], exitCode: o.exitCode ?? -1, stderr: o.stderr ?? '' })));
      }
    };
    for (const step of plan.steps) {
      // Shared node objects may exist already; pod objects existing is an error (CNI ADD
      // semantics). A node step is only run when its probe says it is not in effect: always
      // for one that is not harmless to repeat, and for any whose probe costs no process (a
      // node sysctl is then written only when it is wrong, never by every ADD at once).
      if (step.scope === 'node' && step.probe && (!step.idempotent || isFast(step.probe))) {
        if (unit && (unit as Unit).ns === step.probe.ns) await flush();
        if (await this.probe(step.probe)) {
          j.steps[step.id] = { status: 'skipped' };
          dirty.add(step.id);
          continue;
        }
      }
      if (unit && canJoin(unit, step)) (unit as Unit).steps.push(step);
      else {
        await flush();
        unit = unitOf(step);
      }
    }
    await flush();
    j.state = 'applied';
    // With the state go the steps skipped after the last unit ran. No fsync: after a crash
    // "applying" and "applied" lead DEL to the same undo, and after a power cut the pod's
    // namespace, links and rules are gone whatever the journal says.
    this.ctx.journals.append(j, { ...(dirty.size > 0 ? { steps: changed() } : {}), state: 'applied' });
    return j;
  }

  private async rollback(j: Journal, failures: StepFailure[]): Promise<never> {
    const applied = new Set(Object.entries(j.steps).filter(([, r]) => r.status === 'applied' || r.status === 'unknown').map(([id]) => id));
    const report = await this.teardown(teardownSteps(j.plan.steps, applied));
    for (const id of report.undone) {
      const fwd = id.replace(/^undo:/, '');
      if (j.steps[fwd]) j.steps[fwd]!.status = 'undone';
    }
    j.state = report.errors.length === 0 ? 'rolled-back' : 'rollback-incomplete';
    j.error = describeFailures(failures);
    this.ctx.journals.write(j);
    const rollback = report.errors.length === 0
      ? `rollback complete (${report.undone.length} undone)`
      : `rollback incomplete: ${describeFailures(report.errors)}`;
    throw new CniError(
      report.errors.length === 0 ? Code.StepFailed : Code.RollbackIncomplete,
      `step ${failures[0]!.step} failed`,
      `${describeFailures(failures)}; ${rollback}`,
    );
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
