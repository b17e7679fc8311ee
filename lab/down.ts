// `testcni lab down`: removes everything lab.json says the lab made, in reverse: pods (DEL, best
// effort), agents, etcd, namespaces, then the lab dir. Works on a half-built lab; a second run
// finds nothing to do.
import { rmSync, rmdirSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LabRecord, readLabState, LAB_ROOT } from './state.ts';
import { stopAgent } from './agents.ts';
import { deletePod } from './pods.ts';
import { delNetns } from './topology.ts';
import { stopOwned, ownedPid } from './sys.ts';
import { removeNodeState } from './node-state.ts';

/** Removes the lab in `dir`; false when there is none. Throws (keeping lab.json) if something
 *  could not be removed, so a later `down` can try again. */
export async function labDown(dir: string, log: (line: string) => void = () => {}): Promise<boolean> {
  const state = readLabState(dir);
  if (!state) return false;
  const rec = new LabRecord(state);
  const problems: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      problems.push(`${what}: ${(e as Error).message}`);
    }
  };

  // DEL while the agents still run, so addresses are released as a runtime would release them.
  const pods = [...state.pods];
  const dels = await Promise.all(pods.map((p) => deletePod(rec, p).catch((e: Error) => ({ code: -1, stderr: e.message }))));
  const failedDels = dels.filter((d) => d !== null && d.code !== 0).length;
  if (pods.length > 0) log(`pods      ${pods.length} deleted${failedDels ? ` (${failedDels} DEL(s) failed; their namespaces are gone anyway)` : ''}`);

  await Promise.all(state.nodes.map((n) => attempt(`stop agent ${n.name}`, () => stopAgent(rec, n))));
  if (state.nodes.length > 0) log(`agents    ${state.nodes.length} stopped`);
  // A stopped agent stops its node's daemons (BIRD); one that was killed leaves them running.
  const strays = await Promise.all(state.nodes.map((n) => stopDaemonsLeftIn(n.dir, (e) => problems.push(e))));
  if (strays.some((x) => x > 0)) log(`daemons   ${strays.reduce((a, b) => a + b, 0)} left by killed agents stopped`);
  // What the nodes keep outside their namespaces (vxlan: bpffs pins), while the namespaces exist.
  const removed = await Promise.all(state.nodes.map((n) => removeNodeState(state, n).catch((e: Error) => {
    problems.push(`node state of ${n.name}: ${e.message}`);
    return [];
  })));
  if (removed.some((r) => r.length > 0)) log(`nodes     ${state.mode} node state removed on ${removed.filter((r) => r.length > 0).length} node(s)`);
  if (state.etcd) {
    const etcd = state.etcd;
    await attempt('stop etcd', () => stopOwned(etcd.pid, etcd.dir));
    rec.update((s) => void (s.etcd!.pid = null));
    log('etcd      stopped');
  }

  const netns = [...state.netns].reverse();
  const gone: string[] = [];
  for (const ns of netns) await attempt(`delete netns ${ns}`, async () => {
    await delNetns(ns);
    gone.push(ns);
  });
  rec.update((s) => void (s.netns = s.netns.filter((n) => !gone.includes(n))));
  log(`netns     ${gone.length} deleted`);

  if (problems.length > 0) throw new Error(`lab ${state.name} not fully removed (run down again): ${problems.join('; ')}`);
  rmSync(dir, { recursive: true, force: true });
  // The shared parent of default lab dirs goes with its last lab.
  if (dirname(dir) === LAB_ROOT && readdirSync(LAB_ROOT).length === 0) rmdirSync(LAB_ROOT);
  log(`lab ${state.name} removed (${dir})`);
  return true;
}

/** Stops the processes whose PID files are in a node's dir and whose command lines name that
 *  dir (daemons of an agent that died without stopping them); returns how many it stopped. */
async function stopDaemonsLeftIn(dir: string, problem: (e: string) => void): Promise<number> {
  if (!existsSync(dir)) return 0;
  let stopped = 0;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.pid'))) {
    const pid = Number(readFileSync(join(dir, f), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0 || !ownedPid(pid, dir)) continue;
    try {
      await stopOwned(pid, dir);
      stopped++;
    } catch (e) {
      problem(`stop ${join(dir, f)}: ${(e as Error).message}`);
    }
  }
  return stopped;
}
