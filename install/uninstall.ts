// `testcni uninstall`: the reverse of install, in the order that keeps the node safe. The conflist
// goes first (the runtime stops putting pods on the network), then the binary, then the node-scoped
// state of the network's mode (install/node-teardown.ts), and the state and IPAM files only when
// asked. It removes only what it can tell is testcni's, and refuses while the agent still runs or
// pods are still attached, unless forced.
import { createReadStream, existsSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import type { AgentStatus } from '../ipam/agent-protocol.ts';
import type { Runner } from '../executor/runner.ts';
import { JournalStore, journalDir } from '../executor/journal.ts';
import { loadConfig } from '../cni/config.ts';
import { DEFAULT_NETWORK } from '../schemas/network-config.ts';
import type { NetworkConfig } from '../model/config.ts';
import { removeIfExists } from '../lib/atomic-file.ts';
import { checkConflist, isOurConflist, removeConflist } from './conflist.ts';
import { readRecord, removeRecord, recordPath } from './record.ts';
import { NODE_TEARDOWNS, teardownsFor, type NodeTeardown, type Removal } from './node-teardown.ts';

/** The "about" line every testcni build carries (cli/main.ts): how a binary without a record is recognised. */
export const BINARY_MARKER = 'testcni: a CNI plugin for Kubernetes';

export class UninstallRefused extends Error {}

export interface UninstallRequest {
  binDir: string;
  binName: string;
  confDir: string;
  confName: string;
  stateDir: string;
  routeProtocol: number;
  /** the agent socket to check; default: the conflist's */
  agentSocket: string | null;
  purgeState: boolean;
  force: boolean;
  dryRun: boolean;
}

export interface UninstallDeps {
  runner: Runner;
  ip: string;
  agentStatus(socket: string): Promise<AgentStatus>;
  say(line: string): void;
  teardowns?: readonly NodeTeardown[];
}

export interface UninstallReport {
  removed: string[];
  kept: string[];
  failed: string[];
}

async function sha256Of(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Whether `path` holds `marker`, read in chunks (the executable is ~85 MB). */
export async function fileContains(path: string, marker: string): Promise<boolean> {
  const needle = Buffer.from(marker);
  let tail = Buffer.alloc(0);
  for await (const chunk of createReadStream(path)) {
    const buf = Buffer.concat([tail, chunk as Buffer]);
    if (buf.includes(needle)) return true;
    tail = buf.subarray(Math.max(0, buf.length - needle.length + 1));
  }
  return false;
}

/** The installed network: the conflist on disk, else the one recorded at install, else the defaults. */
function installedNetwork(conflistPath: string, recorded: string | null, stateDir: string): { network: NetworkConfig; from: string } {
  if (existsSync(conflistPath) && isOurConflist(conflistPath)) return { network: checkConflist(readFileSync(conflistPath, 'utf8'), conflistPath), from: conflistPath };
  if (recorded) return { network: checkConflist(recorded, 'the install record'), from: 'the install record' };
  return { network: loadConfig({ ...DEFAULT_NETWORK, stateDir }).config, from: 'the defaults (no conflist or install record found)' };
}

async function agentAnswers(socket: string, deps: UninstallDeps): Promise<boolean> {
  try {
    await deps.agentStatus(socket);
    return true;
  } catch {
    return false;
  }
}

export async function uninstall(req: UninstallRequest, deps: UninstallDeps): Promise<UninstallReport> {
  const report: UninstallReport = { removed: [], kept: [], failed: [] };
  const record = readRecord(req.stateDir);
  // Paths as this process sees them (the record may have been written from inside a container).
  const conflistPath = join(req.confDir, req.confName);
  const { network, from } = installedNetwork(conflistPath, record?.conflist?.text ?? null, req.stateDir);
  deps.say(`network ${network.name} (mode ${network.mode}) from ${from}`);

  // Refuse before touching anything: a running agent would put its routes back, and removing
  // the network under attached pods cuts them off.
  const socket = req.agentSocket ?? network.ipam.agentSocket;
  const attached = new JournalStore(network.stateDir).list(network.name);
  const problems: string[] = [];
  if (await agentAnswers(socket, deps)) problems.push(`the node agent is still running (${socket}): stop it first (delete the DaemonSet)`);
  if (attached.length > 0) {
    const some = attached.slice(0, 3).map((a) => `${a.containerId}/${a.ifName}`).join(', ');
    problems.push(`${attached.length} pod attachment(s) of ${network.name} remain on this node (${some}${attached.length > 3 ? ', …' : ''}): remove those pods first (drain the node)`);
  }
  if (problems.length > 0 && !req.force) throw new UninstallRefused(`${problems.join('; ')}; or pass --force`);
  for (const p of problems) deps.say(`--force: going on although ${p.split(':')[0]}`);

  const act = async (what: string, fn: () => boolean | Promise<boolean>) => {
    if (req.dryRun) return report.removed.push(`would ${what}`);
    try {
      if (await fn()) report.removed.push(what);
    } catch (e) {
      report.failed.push(`${what}: ${(e as Error).message}`);
    }
  };

  // 1. the conflist
  if (existsSync(conflistPath)) {
    if (isOurConflist(conflistPath)) await act(`remove ${conflistPath}`, () => removeConflist(conflistPath));
    else report.kept.push(`${conflistPath}: has no testcni plugin, left alone`);
  }

  // 2. the binary
  const binPath = join(req.binDir, req.binName);
  if (existsSync(binPath)) {
    const ours = (record?.binary && (await sha256Of(binPath)) === record.binary.sha256) || (await fileContains(binPath, BINARY_MARKER));
    if (ours) await act(`remove ${binPath}`, () => removeIfExists(binPath));
    else report.kept.push(`${binPath}: not a testcni build, left alone`);
  }

  // ... and the objects installed beside it, when they are still the ones installed.
  for (const o of record?.objects ?? []) {
    const path = join(req.binDir, 'bpf', basename(o.path));
    if (!existsSync(path)) continue;
    if ((await sha256Of(path)) === o.sha256) await act(`remove ${path}`, () => removeIfExists(path));
    else report.kept.push(`${path}: changed since it was installed, left alone`);
  }
  if (record?.objects?.length) await act(`remove ${join(req.binDir, 'bpf')} if empty`, () => removeDirIfEmpty(join(req.binDir, 'bpf')));

  // 3. node-scoped state of the network's mode
  for (const t of teardownsFor(network.mode, deps.teardowns ?? NODE_TEARDOWNS)) {
    const dirs = { run: dirname(socket), state: network.stateDir }; // the agent's, as the manifests and the lab set them
    const found = await t.find({ network, routeProtocol: req.routeProtocol, dirs, ip: deps.ip, runner: deps.runner });
    report.kept.push(...found.kept);
    for (const r of found.removals) await act(r.describe, () => run(r, deps));
  }

  // 4. the install record; the network's files only when asked
  await act(`remove ${recordPath(req.stateDir)}`, () => removeRecord(req.stateDir));
  if (req.purgeState) {
    for (const [what, fn] of purgeActions(network, socket, req.stateDir)) await act(what, fn);
  }
  return report;
}

async function run(r: Removal, deps: UninstallDeps): Promise<boolean> {
  const res = await deps.runner.run(r.argv);
  if (res.exitCode !== 0) throw new Error(`${r.argv.join(' ')} exited ${res.exitCode}: ${res.stderr.trim()}`);
  return true;
}

const IPAM_FILE = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|last_reserved_ip\.\d+|lock|\.reserving-[0-9a-f]+|.*\.tmp-\d+)$/;

/** Removes `dir` if every entry matches `ours`; false (and nothing removed) otherwise. */
function removeOwnedDir(dir: string, ours: (name: string) => boolean): boolean {
  if (!existsSync(dir)) return false;
  const entries = readdirSync(dir);
  const foreign = entries.filter((f) => !ours(f));
  if (foreign.length > 0) throw new Error(`${dir} holds files testcni did not make (${foreign.slice(0, 3).join(', ')}): left alone`);
  for (const f of entries) removeIfExists(join(dir, f));
  rmdirSync(dir);
  return true;
}

function removeDirIfEmpty(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch {
    return false; // missing, or holds something else: keep it
  }
}

/** The network's journals and locks, its IPAM reservations, the agent socket, then empty dirs. */
function purgeActions(network: NetworkConfig, socket: string, recordDir: string): [string, () => boolean][] {
  const state = network.stateDir;
  const locks = join(state, 'locks');
  return [
    [`remove journals in ${journalDir(state, network.name)}`, () => removeOwnedDir(journalDir(state, network.name), (f) => f.endsWith('.jsonl') || /\.tmp-\d+$/.test(f))],
    [`remove lock files of ${network.name} in ${locks}`, () => {
      if (!existsSync(locks)) return false;
      const mine = readdirSync(locks).filter((f) => f.startsWith(`${network.name}~`) && f.endsWith('.lock'));
      for (const f of mine) removeIfExists(join(locks, f));
      return mine.length > 0;
    }],
    [`remove IPAM reservations in ${join(network.ipam.dataDir, network.name)}`, () => removeOwnedDir(join(network.ipam.dataDir, network.name), (f) => IPAM_FILE.test(f))],
    [`remove agent socket ${socket}`, () => removeIfExists(socket)],
    [`remove empty dirs under ${state}`, () => [join(state, 'journal'), locks, state, recordDir].map(removeDirIfEmpty).some(Boolean)],
  ];
}
