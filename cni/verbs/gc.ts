// GC (CNI 1.1): remove every attachment of this network that is not in the valid list —
// its journalled state first, then any address reservation left without one.
import { CniError, Code } from '../../model/errors.ts';
import { JournalStore } from '../../executor/journal.ts';
import { openIpam } from '../../ipam/open.ts';
import { keyString } from '../../ipam/store.ts';
import { removeAttachment } from './del.ts';
import { withAttachmentLock, type VerbContext } from './context.ts';
import { requireVerbVersion } from '../version.ts';

export interface GcReport {
  removed: string[];
  released: string[];
  failed: string[];
}

export async function runGc(ctx: Omit<VerbContext, 'env'>, graceMs = 0): Promise<GcReport> {
  const valid = ctx.extras.validAttachments;
  if (!valid) throw new CniError(Code.InvalidConfig, 'GC needs cni.dev/valid-attachments', 'without the list every attachment would look stale');
  const keep = new Set(valid.map((v) => keyString({ containerId: v.containerID, ifName: v.ifname })));
  const journals = new JournalStore(ctx.config.stateDir);
  const report: GcReport = { removed: [], released: [], failed: [] };
  for (const a of journals.list(ctx.config.name)) {
    if (keep.has(keyString(a))) continue;
    try {
      // The same lock as DEL: an operator's GC may run while the runtime deletes this pod. No
      // netns: a readable journal has the plan, and without one the pod netns is unknown.
      const { released } = await withAttachmentLock(journals, a, () => removeAttachment({
        config: ctx.config, mode: ctx.mode, attachment: a, netns: '', prevResult: null, runner: ctx.runner, log: ctx.log, journals, sys: ctx.sys,
      }));
      report.removed.push(keyString(a));
      report.released.push(...released);
    } catch (e) {
      report.failed.push(`${keyString(a)}: ${(e as Error).message}`);
    }
  }
  report.released.push(...(await openIpam(ctx.config).gc(valid.map((v) => ({ containerId: v.containerID, ifName: v.ifname })), graceMs)));
  ctx.log.info('GC done', { ...report });
  if (report.failed.length > 0) throw new CniError(Code.StepFailed, 'GC could not remove every stale attachment', report.failed.join('; '));
  return report;
}

export async function cmdGc(ctx: VerbContext): Promise<void> {
  requireVerbVersion('GC', ctx.config.cniVersion);
  await runGc(ctx);
}
