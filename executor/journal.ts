// One journal per attachment (network, containerId, ifName): the ADD plan, the lease and what
// happened to each step. The first line is the whole record, written atomically (temp file,
// fsync, rename); progress is appended as one JSON line per executed unit, which costs a
// write(2) instead of a file replace (~1 ms each here). A SIGKILL can only tear the last
// line, and a torn last line is ignored: the record reads as it was before that write.
import { readFileSync, readdirSync, openSync, fstatSync, ftruncateSync, fsyncSync, closeSync, constants } from 'node:fs';
import { join, basename } from 'node:path';
import type { Plan } from '../model/plan.ts';
import type { Lease } from '../model/lease.ts';
import { writeFileAtomic, writeAll, ensureDir, removeIfExists } from '../lib/atomic-file.ts';
import { LOCK_EXT } from '../lib/pid-lock.ts';
import { fnv1a64 } from '../lib/hash.ts';

/** The longest file name (in bytes) the filesystems we run on accept. */
const MAX_NAME_BYTES = 255;

/** pending: not run yet; applied: ran and succeeded; skipped: was already in effect (never undone);
 *  failed: its command failed (never undone: the failure may mean somebody else owns it);
 *  unknown: its batch failed on a line that could not be attributed; undone: rolled back. */
export type StepStatus = 'pending' | 'applied' | 'skipped' | 'failed' | 'unknown' | 'undone';

export type JournalState = 'applying' | 'applied' | 'rolled-back' | 'rollback-incomplete';

export interface StepRecord {
  status: StepStatus;
  exitCode?: number;
  stderr?: string;
  ms?: number;
}

export interface Journal {
  version: 1;
  network: string;
  containerId: string;
  ifName: string;
  netns: string;
  state: JournalState;
  lease: Lease | null;
  plan: Plan;
  steps: Record<string, StepRecord>;
  updated: string;
  error?: string;
}

/** A journal that exists but cannot be parsed (e.g. a file left empty by a power cut). */
export class JournalCorrupt extends Error {}

/** What one appended line changes. */
export interface JournalDelta {
  steps?: Record<string, StepRecord>;
  state?: JournalState;
  error?: string;
}

export interface Attachment {
  network: string;
  containerId: string;
  ifName: string;
}

export function journalDir(stateDir: string, network: string): string {
  return join(stateDir, 'journal', network);
}

// containerId cannot contain "@", so the first "@" separates it from the interface name.
export function journalPath(stateDir: string, a: Attachment): string {
  return join(journalDir(stateDir, a.network), `${a.containerId}@${a.ifName}${JOURNAL_EXT}`);
}

export const JOURNAL_EXT = '.jsonl';

export function attachmentOfFile(network: string, file: string): Attachment | null {
  if (!file.endsWith(JOURNAL_EXT)) return null;
  const base = file.slice(0, -JOURNAL_EXT.length);
  const at = base.indexOf('@');
  if (at <= 0) return null;
  return { network, containerId: base.slice(0, at), ifName: base.slice(at + 1) };
}

export class JournalStore {
  constructor(
    readonly stateDir: string,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  path(a: Attachment): string {
    return journalPath(this.stateDir, a);
  }

  /** Locks live apart from journals in one directory made once, so a call refused before it
   *  writes anything leaves no per-network directory behind. "~" occurs in neither a network
   *  name nor a container id. */
  lockPath(a: Attachment): string {
    const readable = `${a.network}~${a.containerId}@${a.ifName}${LOCK_EXT}`;
    // A long network name and container id together can exceed a file name's 255 bytes.
    const name = Buffer.byteLength(readable) <= MAX_NAME_BYTES ? readable : `${fnv1a64(readable)}${LOCK_EXT}`;
    return join(this.lockDir(), name);
  }

  lockDir(): string {
    return join(this.stateDir, 'locks');
  }

  read(a: Attachment): Journal | null {
    let text: string;
    try {
      text = readFileSync(this.path(a), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    try {
      return parseJournal(text);
    } catch (e) {
      throw new JournalCorrupt(`journal ${this.path(a)} is unreadable: ${(e as Error).message}`);
    }
  }

  /** Like read(), but an unreadable journal counts as none (for listings and clean-up). */
  readOrNull(a: Attachment): Journal | null {
    try {
      return this.read(a);
    } catch (e) {
      if (e instanceof JournalCorrupt) return null;
      throw e;
    }
  }

  /** Replaces the whole journal with `j` (one line). `durable` adds an fsync. */
  write(j: Journal, durable = true): void {
    ensureDir(journalDir(this.stateDir, j.network));
    j.updated = this.clock().toISOString();
    writeFileAtomic(this.path(j), JSON.stringify(j) + '\n', { mode: 0o600, fsync: durable });
  }

  /** Appends a change (already applied to `j` by the caller) as one line. */
  append(j: Journal, delta: JournalDelta, durable = false): void {
    j.updated = this.clock().toISOString();
    // The journal exists (write() made it): never create one here, nor follow a link.
    const fd = openSync(this.path(j), constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
    const size = fstatSync(fd).size;
    try {
      writeAll(fd, JSON.stringify({ ...delta, updated: j.updated }) + '\n');
      if (durable) fsyncSync(fd);
    } catch (e) {
      // A short write (disk full) would leave a torn line that later lines then follow: cut it
      // off, so the journal reads as it was before this append. Truncating needs no space.
      try { ftruncateSync(fd, size); } catch { /* the caller rolls back and says so */ }
      throw e;
    } finally {
      closeSync(fd);
    }
  }

  /** Removes the journal and any temp file of a writer killed mid-write (writes go through
   *  "<journal>.tmp-<pid>"; under the attachment lock only a dead writer can have left one). */
  remove(a: Attachment): void {
    const dir = journalDir(this.stateDir, a.network);
    const tmpPrefix = `${basename(this.path(a))}.tmp-`;
    let files: string[] = [];
    try {
      files = readdirSync(dir);
    } catch { /* no directory: nothing to remove */ }
    for (const f of files) if (f.startsWith(tmpPrefix)) removeIfExists(join(dir, f));
    removeIfExists(this.path(a));
  }

  list(network: string): Attachment[] {
    let files: string[];
    try {
      files = readdirSync(journalDir(this.stateDir, network));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    return files.map((f) => attachmentOfFile(network, f)).filter((a): a is Attachment => a !== null);
  }
}

/** The first line is the record; each later line a delta. A torn last line is skipped. */
export function parseJournal(text: string): Journal {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const j = JSON.parse(lines[0]!) as Journal;
  for (let i = 1; i < lines.length; i++) {
    let d: JournalDelta & { updated?: string };
    try {
      d = JSON.parse(lines[i]!);
    } catch {
      if (i === lines.length - 1) break; // torn by a crash mid-write
      throw new Error(`journal line ${i + 1} is not JSON`);
    }
    if (d.steps) Object.assign(j.steps, d.steps);
    if (d.state) j.state = d.state;
    if (d.error !== undefined) j.error = d.error;
    if (d.updated) j.updated = d.updated;
  }
  return j;
}

export function newJournal(plan: Plan, lease: Lease | null): Journal {
  const steps: Record<string, StepRecord> = {};
  for (const s of plan.steps) steps[s.id] = { status: 'pending' };
  return {
    version: 1,
    network: plan.network,
    containerId: plan.containerId,
    ifName: plan.ifName,
    netns: plan.netns,
    state: 'applying',
    lease,
    plan,
    steps,
    updated: '',
  };
}

/** Steps a DEL must undo: whatever may be in effect. While applying (a crash), a pending step
 *  may have been in flight, so it counts too; after a clean failure it was never started. */
export function undoCandidates(j: Journal): Set<string> {
  const out = new Set<string>();
  if (j.state === 'rolled-back') return out;
  for (const [id, rec] of Object.entries(j.steps)) {
    if (rec.status === 'applied' || rec.status === 'unknown' || (j.state === 'applying' && rec.status === 'pending')) out.add(id);
  }
  // A step applied for certain that supersedes an earlier one (a rename) leaves nothing for
  // the earlier one's undo to remove: skipping it saves DEL a failing command and a probe.
  for (const s of j.plan.steps) if (s.supersedes && j.steps[s.id]?.status === 'applied') out.delete(s.supersedes);
  return out;
}
