// ADD: lease an address, compile the plan, apply it; on failure the executor has rolled back
// and the lease goes back to the pool.
import { statfsSync } from 'node:fs';
import { CniError, Code } from '../../model/errors.ts';
import { serialiseResult } from '../result.ts';
import { compile } from '../../planner/compile.ts';
import { Executor } from '../../executor/executor.ts';
import { JournalStore } from '../../executor/journal.ts';
import { gatherFacts } from '../../executor/facts.ts';
import { openIpam } from '../../ipam/open.ts';
import { attachmentOf, factsWanted, readJournal, withAttachmentLock, type VerbContext } from './context.ts';

// statfs f_type of a namespace file: nsfs, or proc on kernels before 3.19.
const NSFS_MAGIC = 0x6e736673;
const PROC_SUPER_MAGIC = 0x9fa0;

/** Refuses a CNI_NETNS that is missing or not a namespace before anything is leased or journalled. */
function requireNetns(path: string): void {
  let type: number;
  try {
    type = statfsSync(path).type;
  } catch {
    throw new CniError(Code.InvalidEnv, 'CNI_NETNS does not exist', `no such netns: ${path}`);
  }
  if (type !== NSFS_MAGIC && type !== PROC_SUPER_MAGIC) {
    throw new CniError(Code.InvalidEnv, 'CNI_NETNS is not a network namespace', `${path} is not a namespace file`);
  }
}

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
    const facts = await gatherFacts(factsWanted(config, ctx.mode, { mtu: true }), ctx.runner);
    const key = { containerId: env.containerId, ifName: env.ifName };
    const leaseStarted = process.hrtime.bigint();
    const lease = await ipam.allocate(key);
    ctx.log.debug('lease', { ip: lease.address, ipam: config.ipam.type, ms: Number((process.hrtime.bigint() - leaseStarted) / 1000n) / 1000 });
    const ip = lease.address.split('/')[0]!;
    let plan;
    try {
      plan = compile({ command: 'ADD', config, containerId: env.containerId, ifName: env.ifName, netns: env.netns, lease, facts }, ctx.mode);
      await new Executor({ runner: ctx.runner, facts, journals, log: ctx.log, sys: ctx.sys }).apply(plan, lease);
    } catch (e) {
      // A rollback that left pod state behind keeps the address: DEL releases it after cleaning up.
      if (!(e instanceof CniError && e.code === Code.RollbackIncomplete)) {
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
