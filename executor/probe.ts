// Answers "is this step already in effect?". Queries of link names, sysctls and files in the
// node's own namespace are answered in-process; everything else runs its query.
import { HOST, type Probe, type NodeFacts } from '../model/plan.ts';
import { holds, type ProbeOutput } from '../planner/predicate.ts';
import type { Runner } from './runner.ts';
import { inNs } from './namespaces.ts';
import type { NodeSystem } from './system.ts';

/** In-process answer, or null when this probe needs a process. */
export function fastProbe(probe: Probe, sys: NodeSystem): ProbeOutput | null {
  if (probe.ns !== HOST) return null;
  switch (probe.mech) {
    case 'links':
      return { exitCode: 0, stdout: '', json: sys.linkNames().map((ifname) => ({ ifname })) };
    case 'sysctl':
      return { exitCode: 0, stdout: sys.readSysctl(probe.key) ?? '' }; // -e: an absent key prints nothing
    case 'file': {
      const content = sys.readFile(probe.path);
      return content === null ? { exitCode: 1, stdout: '' } : { exitCode: 0, stdout: content };
    }
    case 'exec':
      return null;
  }
}

/** Whether the probe is answered in-process (no process started). */
export function isFast(probe: Probe): boolean {
  return probe.ns === HOST && probe.mech !== 'exec';
}

/** The query's output: in-process where possible, else from its command (JSON parsed). */
export async function queryOutput(probe: Probe, facts: NodeFacts, runner: Runner, sys: NodeSystem): Promise<ProbeOutput> {
  if (!sys.nsExists(probe.ns)) return { exitCode: 1, stdout: '' };
  const fast = fastProbe(probe, sys);
  if (fast) return fast;
  if (probe.mech === 'file') return { exitCode: 1, stdout: '' }; // files live in the node's namespace only
  const r = await runner.run(inNs(facts, probe.ns, probe.argv));
  const out: ProbeOutput = { exitCode: r.exitCode, stdout: r.stdout };
  if (r.exitCode === 0 && /^\s*[[{]/.test(r.stdout)) {
    try {
      out.json = JSON.parse(r.stdout);
    } catch { /* not JSON: JSON predicates see nothing */ }
  }
  return out;
}

export async function runProbe(probe: Probe, facts: NodeFacts, runner: Runner, sys: NodeSystem): Promise<boolean> {
  return holds(probe.expect, await queryOutput(probe, facts, runner, sys));
}
