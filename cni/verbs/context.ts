// What every verb handler receives, and the pieces they share.
import { mkdirSync } from 'node:fs';
import type { CniEnv } from '../env.ts';
import type { NetworkConfig, ConfigExtras } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Runner } from '../../executor/runner.ts';
import type { NodeSystem } from '../../executor/system.ts';
import { JournalStore, JournalCorrupt, type Attachment, type Journal } from '../../executor/journal.ts';
import { withPidLock, LockTimeout } from '../../lib/pid-lock.ts';
import { CniError, Code } from '../errors.ts';

export interface VerbContext {
  env: CniEnv;
  config: NetworkConfig;
  extras: ConfigExtras;
  log: Logger;
  runner: Runner;
  /** in-process node access for the executor; the real node unless a test gives another */
  sys?: NodeSystem;
}

export const LOCK_TIMEOUT_MS = 20_000;

export function attachmentOf(ctx: VerbContext): Attachment {
  return { network: ctx.config.name, containerId: ctx.env.containerId, ifName: ctx.env.ifName };
}

/** Serialises operations on one attachment (ADD, DEL, CHECK, GC) across plugin processes. */
export async function withAttachmentLock<T>(journals: JournalStore, a: Attachment, fn: () => Promise<T>): Promise<T> {
  mkdirSync(journals.lockDir(), { recursive: true, mode: 0o700 });
  try {
    return await withPidLock(journals.lockPath(a), LOCK_TIMEOUT_MS, fn);
  } catch (e) {
    if (e instanceof LockTimeout) throw new CniError(Code.TryAgainLater, 'another operation on this attachment is running', e.message);
    throw e;
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
