// ADD: lease an address, compile the plan, apply it; on failure the executor has rolled back
// and the lease goes back to the pool.
import { CniError, Code } from '../../model/errors.ts';
import { serialiseResult } from '../result.ts';
import { compile } from '../../planner/compile.ts';
import { Executor } from '../../executor/executor.ts';
import { JournalStore } from '../../executor/journal.ts';
import { gatherFacts } from '../../executor/facts.ts';
import { openIpam } from '../../ipam/open.ts';
import { requireNetns } from '../netns.ts';
import { attachmentOf, factsWanted, readJournal, withAttachmentLock, type VerbContext } from './context.ts';

export async function cmdAdd(ctx: VerbContext): Promise<Record<string, unknown>> {
  const { env, config } = ctx;
  requireNetns(env.netns);
  const ipam = openIpam(config);
  const journals = new JournalStore(config.stateDir);
  const a = attachmentOf(ctx);
  return withAttachmentLock(journals, a, async () => {
    const existing = readJournal(journals, a, (why) =>
      new CniError(Code.AlreadyAttached, `an unreadable journal exists for ${env.ifName} on network ${config.name}`, `${why}; DEL it first`));
    if (existing && existing.state !== 'rolled-back') {
      throw new CniError(Code.AlreadyAttached, `container already has ${env.ifName} on network ${config.name}`,
        `journal ${journals.path(a)} is in state ${existing.state}; DEL it first`);
    }
    const facts = await gatherFacts(factsWanted(config, ctx.mode, { add: true }), ctx.runner, ctx.sys);
    const request = { command: 'ADD' as const, config, containerId: env.containerId, ifName: env.ifName, netns: env.netns, facts,
      ...(Object.keys(env.args).length > 0 ? { args: env.args } : {}) };
    ctx.mode.preflight?.(request); // a request the node cannot carry fails before anything is leased
    const key = { containerId: env.containerId, ifName: env.ifName };
    const leaseStarted = process.hrtime.bigint();
    const lease = await ipam.allocate(key);
    ctx.log.debug('lease', { ip: lease.address, ipam: config.ipam.type, ms: Number((process.hrtime.bigint() - leaseStarted) / 1000n) / 1000 });
    const ip = lease.address.split('/')[0]!;
    let plan;
    let applying = false;
    try {
      plan = compile({ ...request, lease }, ctx.mode);
      applying = true;
      await new Executor({ runner: ctx.runner, facts, journals, log: ctx.log, sys: ctx.sys }).apply(plan, lease);
    } catch (e) {
      // The address goes back only when nothing can be using it: nothing was applied, or the
      // executor rolled everything back (its CniErrors say which). A rollback that left pod
      // state behind (102), or any other failure while applying, keeps the address: DEL
      // releases it after cleaning up.
      const nothingLeft = !applying || (e instanceof CniError && e.code !== Code.RollbackIncomplete);
      if (nothingLeft) {
        try {
          await ipam.release(key, ip);
        } catch (releaseError) {
          // The ADD's own failure is what the runtime must see; DEL or GC frees the address.
          ctx.log.warn('address not released after a failed ADD', { ip, error: (releaseError as Error).message });
        }
      }
      throw e;
    }
    ctx.log.info('ADD done', { ip: lease.address, steps: plan.steps.length });
    return serialiseResult(plan.result!, config.cniVersion);
  });
}
