// GC (CNI 1.1): remove every attachment of this network that is not in the valid list —
// its journalled state first, then any address reservation left without one — and what killed
// plugin processes left behind: their locks and temp files.
import { CniError, Code } from '../../model/errors.ts';
import { JournalStore, journalDir } from '../../executor/journal.ts';
import { sweepStaleLocks } from '../../lib/pid-lock.ts';
import { sweepDeadWriterFiles } from '../../lib/leftovers.ts';
import { openIpam } from '../../ipam/open.ts';
import { keyString } from '../../ipam/store.ts';
import { removeAttachment } from './del.ts';
import { withAttachmentLock, factsWanted, type VerbContext } from './context.ts';
import { Executor, type TeardownReport } from '../../executor/executor.ts';
import { gatherFacts } from '../../executor/facts.ts';
import { runQueries } from '../../executor/probe.ts';
import { realSystem } from '../../executor/system.ts';
import { requireVerbVersion } from '../version.ts';

export interface GcReport {
  removed: string[];
  released: string[];
  failed: string[];
  /** node state of the mode that pods left behind, removed (vxlan: stale endpoint entries) */
  swept: string[];
  /** locks and temp files of dead processes that were removed */
  leftovers: string[];
}

/** Locks and temp files name their process; those of a dead one go after this long at least. */
export const LEFTOVER_GRACE_MS = 1000;

export async function runGc(ctx: Omit<VerbContext, 'env'>, graceMs = 0): Promise<GcReport> {
  const valid = ctx.extras.validAttachments;
  if (!valid) throw new CniError(Code.InvalidConfig, 'GC needs cni.dev/valid-attachments', 'without the list every attachment would look stale');
  const keep = new Set(valid.map((v) => keyString({ containerId: v.containerID, ifName: v.ifname })));
  const journals = new JournalStore(ctx.config.stateDir);
  const report: GcReport = { removed: [], released: [], failed: [], swept: [], leftovers: [] };
  for (const a of journals.list(ctx.config.name)) {
    if (keep.has(keyString(a))) continue;
    try {
      // The same lock as DEL: an operator's GC may run while the runtime deletes this pod. No
      // netns: a readable journal has the plan, and without one the pod netns is unknown.
      const { released } = await withAttachmentLock(journals, a, () => removeAttachment({
        config: ctx.config, mode: ctx.mode, attachment: a, netns: '', prevResult: null, runner: ctx.runner, log: ctx.log, journals, sys: ctx.sys,
      }), (why) => ctx.log.warn('GC without the attachment lock: it cannot be created', { error: why }));
      report.removed.push(keyString(a));
      report.released.push(...released);
    } catch (e) {
      report.failed.push(`${keyString(a)}: ${(e as Error).message}`);
    }
  }
  if (ctx.mode.gc) {
    const sweep = await sweepNode(ctx);
    report.swept.push(...sweep.undone);
    report.failed.push(...sweep.errors.map((e) => `${e.step}: \`${e.argv.join(' ')}\` exited ${e.exitCode}: ${e.stderr}`));
  }
  const grace = Math.max(graceMs, LEFTOVER_GRACE_MS);
  report.leftovers.push(
    ...(await sweepStaleLocks(journals.lockDir(), grace)),
    ...sweepDeadWriterFiles(journalDir(journals.stateDir, ctx.config.name), grace),
    ...sweepDeadWriterFiles(journals.stateDir, grace),
  );
  report.released.push(...(await openIpam(ctx.config).gc(valid.map((v) => ({ containerId: v.containerID, ifName: v.ifname })), graceMs)));
  ctx.log.info('GC done', { ...report });
  if (report.failed.length > 0) throw new CniError(Code.StepFailed, 'GC could not remove every stale attachment', report.failed.join('; '));
  return report;
}

/** What the mode finds pods left on the node beyond their journals (ModeDefinition.gc), removed. */
async function sweepNode(ctx: Omit<VerbContext, 'env'>): Promise<TeardownReport> {
  const sweep = ctx.mode.gc!;
  const sys = ctx.sys ?? realSystem;
  const facts = await gatherFacts(factsWanted(ctx.config, ctx.mode, { add: false }), ctx.runner, sys);
  const observed = await runQueries(sweep.observe(ctx.config, facts), facts, ctx.runner, sys);
  const steps = sweep.plan(ctx.config, facts, observed);
  if (steps.length === 0) return { undone: [], errors: [] };
  return new Executor({ runner: ctx.runner, facts, journals: new JournalStore(ctx.config.stateDir), log: ctx.log, sys }).converge(steps);
}

export async function cmdGc(ctx: VerbContext): Promise<void> {
  requireVerbVersion('GC', ctx.config.cniVersion);
  await runGc(ctx);
}
