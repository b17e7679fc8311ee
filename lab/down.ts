// `testcni lab down`: removes everything lab.json says the lab made, in reverse: pods (DEL, best
// effort), agents, etcd, namespaces, then the lab dir. Works on a half-built lab; a second run
// finds nothing to do.
import { rmSync, rmdirSync, readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { LabRecord, readLabState, LAB_ROOT } from './state.ts';
import { stopAgent } from './agents.ts';
import { deletePod } from './pods.ts';
import { delNetns } from './topology.ts';
import { removeNodeState } from './node-state.ts';
import { stopOwned } from './sys.ts';

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
