// One ADD being applied: steps go into units (one process each), each unit runs, and what it did
// is journalled before the next one starts. A node step whose probe says it is in effect is
// skipped; a failure hands over to the executor's rollback.
import type { Probe, Step } from '../model/plan.ts';
import type { Journal, JournalStore, StepRecord } from './journal.ts';
import type { StepOutcome } from './mechanisms/index.ts';
import type { StepFailure } from './executor.ts';
import { canJoin, unitOf, type Unit } from './units.ts';
import { isFast } from './probe.ts';

export interface ApplyHooks {
  runUnit(unit: Unit): Promise<Map<string, StepOutcome>>;
  probe(p: Probe): Promise<boolean>;
  /** undoes what was applied and throws */
  rollback(failures: StepFailure[]): Promise<never>;
}

/**
 * Shared node objects may exist already; pod objects existing is an error (CNI ADD semantics).
 * A node step is only run when its probe says it is not in effect: always for one that is not
 * harmless to repeat, and for any whose probe costs no process (a node sysctl is then written
 * only when it is wrong, never by every ADD at once).
 */
function probedFirst(step: Step): step is Step & { probe: Probe } {
  return step.scope === 'node' && step.probe !== null && (!step.idempotent || isFast(step.probe));
}

export class ApplyRun {
  private unit: Unit | null = null;
  /** steps whose status changed since the journal last heard of them */
  private readonly dirty = new Set<string>();

  constructor(
    private readonly j: Journal,
    private readonly journals: JournalStore,
    /** the steps of the unit running now (the caller's, to tell what a crash may have applied) */
    private readonly inFlight: Set<string>,
    private readonly hooks: ApplyHooks,
  ) {}

  async add(step: Step): Promise<void> {
    if (probedFirst(step)) {
      // What the unit being built would change must be in place before the probe looks.
      if (this.unit?.ns === step.probe.ns) await this.flush();
      if (await this.hooks.probe(step.probe)) {
        this.set(step.id, { status: 'skipped' });
        return;
      }
    }
    if (this.unit && canJoin(this.unit, step)) {
      this.unit.steps.push(step);
      return;
    }
    await this.flush();
    this.unit = unitOf(step);
  }

  /** Runs the unit being built, if any. */
  async flush(): Promise<void> {
    let next = this.unit;
    this.unit = null;
    while (next) next = await this.runUnit(next);
  }

  /** Journals the end of the plan, with the steps skipped after the last unit ran. No fsync:
   *  after a crash "applying" and "applied" lead DEL to the same undo, and after a power cut
   *  the pod's namespace, links and rules are gone whatever the journal says. */
  finish(): void {
    this.j.state = 'applied';
    this.journals.append(this.j, { ...(this.dirty.size > 0 ? { steps: this.changed() } : {}), state: 'applied' });
  }

  /** Runs one unit and journals it; returns the rest of the unit to run when a shared node
   *  object appeared meanwhile, null when the unit is done. */
  private async runUnit(unit: Unit): Promise<Unit | null> {
    for (const s of unit.steps) this.inFlight.add(s.id);
    const outcomes = await this.hooks.runUnit(unit);
    for (const [id, o] of outcomes) {
      const { argv: _argv, ...rec } = o;
      this.set(id, rec);
    }
    this.inFlight.clear();
    const failures = [...outcomes.entries()].filter(([, o]) => o.status === 'failed' || o.status === 'unknown');
    if (failures.length === 0) {
      this.record();
      return null;
    }
    // A concurrent ADD may have created a shared node object between our probe and our
    // command: that is the state we wanted, so carry on with the rest of the unit.
    const [failedId, failed] = failures[0]!;
    const step = unit.steps.find((s) => s.id === failedId)!;
    if (failures.length === 1 && failed.status === 'failed' && step.scope === 'node' && step.probe && (await this.hooks.probe(step.probe))) {
      this.set(failedId, { status: 'skipped' });
      this.record();
      const rest = unit.steps.slice(unit.steps.indexOf(step) + 1);
      return rest.length > 0 ? { ...unit, steps: rest } : null;
    }
    this.record();
    return this.hooks.rollback(failures.map(([id, o]) => ({ step: id, argv: o.argv ?? [], exitCode: o.exitCode ?? -1, stderr: o.stderr ?? '' })));
  }

  private set(id: string, rec: StepRecord): void {
    this.j.steps[id] = rec;
    this.dirty.add(id);
  }

  private changed(): Record<string, StepRecord> {
    const steps = Object.fromEntries([...this.dirty].map((id) => [id, this.j.steps[id]!]));
    this.dirty.clear();
    return steps;
  }

  private record(): void {
    this.journals.append(this.j, { steps: this.changed() });
  }
}
