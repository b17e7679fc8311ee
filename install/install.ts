// `testcni install`: puts the executable into the CNI bin dir, then, once the node agent reports
// ready, the conflist into the CNI conf dir, both by temp file + rename. The order matters: the
// runtime schedules pods onto a network as soon as its conflist appears, so the binary must be
// there first and IPAM must answer.
import { createReadStream, createWriteStream, openSync, fsyncSync, closeSync, chmodSync, renameSync, rmSync, statSync, mkdirSync, existsSync, readdirSync } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import type { AgentStatus } from '../ipam/agent-protocol.ts';
import { writeConflist } from './conflist.ts';
import { writeRecord, readRecord, type InstallRecord } from './record.ts';

export class InstallError extends Error {}

export interface InstallRequest {
  /** the executable to install (the single executable) */
  source: string;
  binDir: string;
  binName: string;
  /** the conflist to write once the agent is ready; null: the binary only */
  conflist: { text: string; confDir: string; name: string } | null;
  /** the agent whose readiness gates the conflist; null: write it at once */
  agentSocket: string | null;
  /** where the install record goes (uninstall reads it) */
  stateDir: string;
  timeoutMs: number;
  pollMs?: number;
}

export interface InstallDeps {
  agentStatus(socket: string): Promise<AgentStatus>;
  sleep(ms: number): Promise<void>;
  now(): number;
  say(line: string): void;
}

/** Copies `src` to `dest` through a temp file in dest's dir (fsync, `mode`, rename); its sha256. */
export async function copyExecutableAtomic(src: string, dest: string, mode = 0o755): Promise<string> {
  const st = statSync(src);
  if (!st.isFile()) throw new InstallError(`${src} is not a file`);
  mkdirSync(dirname(dest), { recursive: true, mode: 0o755 });
  const tmp = join(dirname(dest), `.${basename(dest)}.tmp-${process.pid}`);
  const hash = createHash('sha256');
  try {
    // Streamed: the executable is ~85 MB and the install container's memory is small.
    const tee = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    await pipeline(createReadStream(src), tee, createWriteStream(tmp, { mode }));
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, mode); // whatever the umask
    // A rename replaces the file even while the runtime is executing the old one (no ETXTBSY).
    renameSync(tmp, dest);
  } finally {
    rmSync(tmp, { force: true });
  }
  return hash.digest('hex');
}

/** Polls the agent's /v1/status until it is ready; an InstallError naming the last reason after the timeout. */
export async function waitForAgent(socket: string, timeoutMs: number, pollMs: number, deps: InstallDeps): Promise<AgentStatus> {
  const deadline = deps.now() + timeoutMs;
  let last = 'no answer yet';
  let said = '';
  for (;;) {
    try {
      const s = await deps.agentStatus(socket);
      if (s.ready) return s;
      last = `not ready: ${s.reason ?? 'no reason given'}`;
    } catch (e) {
      last = `${(e as Error).message}${(e as { details?: string }).details ? `: ${(e as { details?: string }).details}` : ''}`;
    }
    if (last !== said) {
      deps.say(`waiting for the node agent at ${socket}: ${last}`);
      said = last;
    }
    if (deps.now() >= deadline) {
      throw new InstallError(`the node agent at ${socket} did not report ready within ${Math.round(timeoutMs / 1000)} s (last: ${last}); the conflist was not written`);
    }
    await deps.sleep(Math.min(pollMs, Math.max(0, deadline - deps.now())));
  }
}

/** The compiled BPF objects beside the executable (`bpf/*.o`: the vxlan mode loads them from
 *  `bpf/` beside the running program), copied into `bpf/` beside the installed one. */
export async function copyObjects(source: string, binDir: string): Promise<{ path: string; sha256: string }[]> {
  const from = join(dirname(source), 'bpf');
  if (!existsSync(from)) return [];
  const out: { path: string; sha256: string }[] = [];
  for (const name of readdirSync(from).filter((f) => f.endsWith('.o')).sort()) {
    const path = join(binDir, 'bpf', name);
    out.push({ path, sha256: await copyExecutableAtomic(join(from, name), path, 0o644) });
  }
  return out;
}

export async function install(req: InstallRequest, deps: InstallDeps): Promise<InstallRecord> {
  const binPath = join(req.binDir, req.binName);
  const sha256 = await copyExecutableAtomic(req.source, binPath);
  const objects = await copyObjects(req.source, req.binDir);
  const previous = readRecord(req.stateDir);
  let record: InstallRecord = {
    version: 1, binary: { path: binPath, sha256 }, ...(objects.length ? { objects } : {}), conflist: previous?.conflist ?? null, installedAt: new Date(deps.now()).toISOString(),
  };
  writeRecord(req.stateDir, record);
  deps.say(`installed ${binPath} (sha256 ${sha256.slice(0, 12)})`);
  for (const o of objects) deps.say(`installed ${o.path} (sha256 ${o.sha256.slice(0, 12)})`);
  if (!req.conflist) return record;

  if (req.agentSocket) {
    const s = await waitForAgent(req.agentSocket, req.timeoutMs, req.pollMs ?? 500, deps);
    deps.say(`node agent ready: node ${s.node}, block ${s.block ?? '-'}`);
  }
  const path = writeConflist(req.conflist.confDir, req.conflist.name, req.conflist.text);
  record = { ...record, conflist: { path, text: req.conflist.text } };
  writeRecord(req.stateDir, record);
  deps.say(`wrote ${path}`);
  return record;
}
