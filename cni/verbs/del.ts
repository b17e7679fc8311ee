// DEL: undo what the journal says may be in effect (or, with no journal, what deterministic
// names point at), then release the address. Missing netns, links, journal or lease: success.
import { CniError, Code } from '../../model/errors.ts';
import { parsePrevResult } from '../result.ts';
import { parseCidr } from '../../lib/ipv4.ts';
import { requireNetns } from '../netns.ts';
import { compile, teardownSteps } from '../../planner/compile.ts';
import { Executor } from '../../executor/executor.ts';
import { JournalStore, JournalCorrupt, undoCandidates, type Attachment, type Journal } from '../../executor/journal.ts';
import { gatherFacts } from '../../executor/facts.ts';
import { openIpam } from '../../ipam/open.ts';
import type { Step } from '../../model/plan.ts';
import type { Runner } from '../../executor/runner.ts';
import type { NodeSystem } from '../../executor/system.ts';
import type { ConfigExtras } from '../config.ts';
import type { NetworkConfig } from '../../model/config.ts';
import type { AnyMode } from '../../planner/mode.ts';
import type { Logger } from '../../lib/log.ts';
import { attachmentOf, factsWanted, withAttachmentLock, type VerbContext } from './context.ts';

export interface TeardownInput {
  config: NetworkConfig;
  mode: AnyMode;
  attachment: Attachment;
  netns: string;
  prevResult: ConfigExtras['prevResult'];
  runner: Runner;
  log: Logger;
  journals: JournalStore;
  sys?: NodeSystem;
}

/** Removes one attachment completely. Shared by DEL and GC. */
export async function removeAttachment(input: TeardownInput): Promise<{ released: string[] }> {
  const { config, attachment: a, journals } = input;
  const ipam = openIpam(config);
  const key = { containerId: a.containerId, ifName: a.ifName };
  let journal: Journal | null = null;
  try {
    journal = journals.read(a);
  } catch (e) {
    // Unreadable: undo by derived names instead, and replace it once that has worked.
    if (!(e instanceof JournalCorrupt)) throw e;
    input.log.warn('journal unreadable, tearing down by derived names', { error: e.message });
  }
  const facts = await gatherFacts(factsWanted(config, input.mode, { add: false }), input.runner);
  let steps: Step[];
  let ip: string | null;
  if (journal) {
    steps = teardownSteps(journal.plan.steps, undoCandidates(journal));
    ip = journal.lease?.address.split('/')[0] ?? null;
  } else {
    // No journal (state dir lost, or the ADD never got that far): rebuild from names.
    // The runtime's cached result may list IPv6 or unusable addresses first: only an IPv4
    // CIDR can be what this plugin handed out.
    const prev = parsePrevResult(input.prevResult)?.ips.find((i) => parseCidr(i.address) !== null);
    ip = prev?.address.split('/')[0] ?? (await ipam.find(key));
    const lease = ip && prev ? { address: prev.address, gateway: prev.gateway ?? '0.0.0.0' } : ip ? { address: `${ip}/32`, gateway: '0.0.0.0' } : null;
    const planConfig = lease ? config : { ...config, ipMasq: false }; // without an address there is no rule to match
    steps = compile({
      command: 'DEL', config: planConfig, containerId: a.containerId, ifName: a.ifName, netns: input.netns,
      lease: lease ?? { address: '0.0.0.0/32', gateway: '0.0.0.0' }, facts,
    }, input.mode).steps;
  }
  const report = await new Executor({ runner: input.runner, facts, journals, log: input.log, sys: input.sys }).teardown(steps);
  if (report.errors.length > 0) {
    if (journal) {
      for (const id of report.undone) {
        const rec = journal.steps[id.replace(/^undo:/, '')];
        if (rec) rec.status = 'undone';
      }
      try {
        journals.write(journal);
      } catch (e) {
        // The old record lists at least what is left: the retry undoes that again.
        input.log.warn('journal not updated after a partial DEL', { error: (e as Error).message });
      }
    }
    // The address stays reserved while something may still use it.
    throw new CniError(Code.StepFailed, 'DEL could not remove everything',
      report.errors.map((e) => `${e.step}: \`${e.argv.join(' ')}\` exited ${e.exitCode}: ${e.stderr}`).join('; '));
  }
  const released = await ipam.release(key, ip);
  journals.remove(a);
  return { released };
}

export async function cmdDel(ctx: VerbContext): Promise<void> {
  if (ctx.env.netns) requireNetns(ctx.env.netns, { mayBeGone: true });
  const journals = new JournalStore(ctx.config.stateDir);
  const attachment = attachmentOf(ctx);
  await withAttachmentLock(journals, attachment, async () => {
    const { released } = await removeAttachment({
      config: ctx.config, mode: ctx.mode, attachment, netns: ctx.env.netns, prevResult: ctx.extras.prevResult,
      runner: ctx.runner, log: ctx.log, journals, sys: ctx.sys,
    });
    ctx.log.info('DEL done', { released });
  }, (why) => ctx.log.warn('DEL without the attachment lock: it cannot be created', { error: why }));
}
