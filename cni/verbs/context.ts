// What every verb handler receives, and the pieces they share.
import { mkdirSync } from 'node:fs';
import type { CniEnv } from '../env.ts';
import type { ConfigExtras } from '../config.ts';
import type { NetworkConfig } from '../../model/config.ts';
import type { Logger } from '../../lib/log.ts';
import type { AnyMode } from '../../planner/mode.ts';
import type { FactsWanted } from '../../executor/facts.ts';
import type { NodeFacts } from '../../model/plan.ts';
import type { Runner } from '../../executor/runner.ts';
import type { NodeSystem } from '../../executor/system.ts';
import { JournalStore, JournalCorrupt, type Attachment, type Journal } from '../../executor/journal.ts';
import { withPidLock, LockTimeout, LockUnavailable } from '../../lib/pid-lock.ts';
import { CniError, Code } from '../../model/errors.ts';

export interface VerbContext {
  env: CniEnv;
  config: NetworkConfig;
  /** the config's mode, from the registry the config was loaded with */
  mode: AnyMode;
  extras: ConfigExtras;
  log: Logger;
  runner: Runner;
  /** in-process node access for the executor; the real node unless a test gives another */
  sys?: NodeSystem;
}

export const LOCK_TIMEOUT_MS = 20_000;

/** The node facts a verb needs: the mode's tools and device; for planning an ADD (`add`) also
 *  the device's MTU when it shapes or bounds the plan, and the mode's own observations. */
export function factsWanted(config: NetworkConfig, mode: AnyMode, opts: { add: boolean }): FactsWanted {
  const own = mode.uplinkOf !== undefined;
  return {
    uplink: own ? mode.uplinkOf!(config) : config.uplink,
    mtuConfigured: !opts.add || (config.mtu !== null && !own),
    tools: mode.tools(config),
    ...(opts.add && mode.observe ? { observe: (facts: NodeFacts) => mode.observe!(config, facts) } : {}),
    // Only a plan that loads them needs the objects (and their digests).
    ...(opts.add && mode.objects ? { objects: mode.objects(config) } : {}),
  };
}

export function attachmentOf(ctx: VerbContext): Attachment {
  return { network: ctx.config.name, containerId: ctx.env.containerId, ifName: ctx.env.ifName };
}

/**
 * Serialises operations on one attachment (ADD, DEL, CHECK, GC) across plugin processes.
 * `unlocked`: what to do when no lock can be created at all (read-only or exhausted state
 * filesystem). DEL and GC pass it and go on without the lock, so that removing a pod's network
 * never depends on free space; ADD and CHECK do not, and fail with code 5.
 */
export async function withAttachmentLock<T>(journals: JournalStore, a: Attachment, fn: () => Promise<T>,
  unlocked?: (why: string) => void): Promise<T> {
  let entered = false;
  try {
    mkdirSync(journals.lockDir(), { recursive: true, mode: 0o700 });
    return await withPidLock(journals.lockPath(a), LOCK_TIMEOUT_MS, () => {
      entered = true;
      return fn();
    });
  } catch (e) {
    if (entered) throw e; // fn's own failure
    if (e instanceof LockTimeout) throw new CniError(Code.TryAgainLater, 'another operation on this attachment is running', e.message);
    // The lock (or its directory) could not be created at all.
    const cause = e instanceof LockUnavailable ? e.cause : (e as NodeJS.ErrnoException);
    if (!unlocked || typeof cause?.code !== 'string') throw cause;
    unlocked(cause.message);
    return fn();
  }
}


/** The attachment's journal; an unreadable one becomes the CNI error `unreadable` builds. */
export function readJournal(journals: JournalStore, a: Attachment, unreadable: (why: string) => CniError): Journal | null {
  try {
    return journals.read(a);
  } catch (e) {
    if (e instanceof JournalCorrupt) throw unreadable(e.message);
    throw e;
  }
}
