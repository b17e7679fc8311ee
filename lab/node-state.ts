// Node state a mode keeps outside the node's network namespace (vxlan: its maps and programs
// pinned in bpffs, which the machine's simulated nodes share), which deleting the namespace
// leaves behind. `lab down` removes it with the mode's own uninstall plan (NodeTeardownPlanner),
// run in the node's namespace before that goes.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { argvOf, type NodeFacts } from '../model/plan.ts';
import type { NetworkConfig } from '../model/config.ts';
import { LATEST } from '../model/cni-version.ts';
import { MODES } from '../planner/registry.ts';
import { loadNetworkConfig } from '../schemas/network-config.ts';
import { checkConflist } from '../install/conflist.ts';
import { resolveTools } from '../executor/facts.ts';
import { runQueries } from '../executor/probe.ts';
import { realSystem } from '../executor/system.ts';
import type { Runner } from '../executor/runner.ts';
import { AGENT_DEFAULTS } from '../agent/config.ts';
import type { LabNode, LabState } from './state.ts';
import { inNetns, netnsPath, runner } from './sys.ts';

/** The network as the node's agent wrote it, or as the lab started it when there is no file. */
function networkOf(s: LabState, node: LabNode): NetworkConfig {
  const file = join(node.confDir, AGENT_DEFAULTS.cniConfName);
  if (existsSync(file)) return checkConflist(readFileSync(file, 'utf8'), file);
  return loadNetworkConfig({ cniVersion: LATEST, name: s.name, type: 'testcni', mode: s.mode, subnet: AGENT_DEFAULTS.clusterSubnet }, LATEST, MODES);
}

/** Runs the mode's node teardown inside the node; returns what it removed (describe lines). */
export async function removeNodeState(s: LabState, node: LabNode): Promise<string[]> {
  const mode = MODES.require(s.mode);
  const planner = mode.node?.teardown;
  if (!planner?.outsideNetns || !existsSync(netnsPath(node.netns))) return [];
  const config = networkOf(s, node);
  const facts: NodeFacts = {
    tools: resolveTools(mode.tools(config)), hostPid: process.pid, uplink: null, uplinkMtu: null,
    netns: String(statSync(netnsPath(node.netns)).ino),
  };
  const inNode: Runner = { spawned: 0, run: (argv, opts) => runner.run(inNetns(node.netns, argv), opts) };
  const ctx = { config, facts, routeProtocol: s.routeProtocol, dirs: { run: dirname(node.socket), state: node.stateDir } };
  const { steps } = planner.plan(ctx, await runQueries(planner.observe(ctx), facts, inNode, realSystem));
  const done: string[] = [];
  for (const step of steps) {
    const r = await inNode.run(argvOf(step));
    if (r.exitCode !== 0) throw new Error(`${step.describe}: ${r.stderr.trim()}`);
    done.push(step.describe);
  }
  return done;
}
