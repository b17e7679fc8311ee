// CHECK: the attachment must exist as prevResult describes it, and every probe of the
// recorded plan must still hold.
import { CniError, Code } from '../../model/errors.ts';
import { parsePrevResult, prevResultProblem } from '../result.ts';
import { requireNetns } from '../netns.ts';
import { Executor } from '../../executor/executor.ts';
import { JournalStore } from '../../executor/journal.ts';
import { gatherFacts } from '../../executor/facts.ts';
import { attachmentOf, factsWanted, readJournal, withAttachmentLock, type VerbContext } from './context.ts';
import { requireVerbVersion } from '../version.ts';

export async function cmdCheck(ctx: VerbContext): Promise<void> {
  requireVerbVersion('CHECK', ctx.config.cniVersion);
  const { env, config } = ctx;
  requireNetns(env.netns);
  const malformed = prevResultProblem(ctx.extras.prevResult);
  if (malformed) throw new CniError(Code.InvalidConfig, 'invalid prevResult', malformed);
  const prev = parsePrevResult(ctx.extras.prevResult);
  if (!prev) throw new CniError(Code.InvalidConfig, 'CHECK needs prevResult', 'the runtime must pass the cached ADD result as prevResult');
  const journals = new JournalStore(config.stateDir);
  const a = attachmentOf(ctx);
  await withAttachmentLock(journals, a, async () => {
    const j = readJournal(journals, a, (why) => new CniError(Code.CheckFailed, 'attachment journal unreadable', why));
    if (!j || j.state !== 'applied') {
      throw new CniError(Code.UnknownContainer, `no ${env.ifName} attachment for this container`, j ? `journal state ${j.state}` : 'no journal');
    }
    const problems: string[] = [];
    const ifc = prev.interfaces.findIndex((i) => i.name === env.ifName && i.sandbox !== undefined);
    if (ifc < 0) problems.push(`prevResult has no interface ${env.ifName} with a sandbox`);
    else if (prev.interfaces[ifc]!.sandbox !== env.netns) problems.push(`prevResult puts ${env.ifName} in ${prev.interfaces[ifc]!.sandbox}, not ${env.netns}`);
    // The address ADD reported (a mode may report it with another prefix than its pool's).
    const ours = j.plan.result?.ips[0]?.address ?? j.lease?.address;
    if (ours && !prev.ips.some((ip) => ip.address === ours)) problems.push(`prevResult does not list ${ours}`);
    const facts = await gatherFacts(factsWanted(config, ctx.mode, { add: false }), ctx.runner);
    const drift = await new Executor({ runner: ctx.runner, facts, journals, log: ctx.log, sys: ctx.sys }).check(j.plan);
    problems.push(...drift.map((d) => `${d.step}: not in effect (${d.describe})`));
    if (problems.length > 0) throw new CniError(Code.CheckFailed, 'attachment does not match its plan', problems.join('; '));
  });
}
