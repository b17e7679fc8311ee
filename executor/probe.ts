// Answers "is this step already in effect?". Queries of link names, neighbour entries, sysctls,
// files and paths in the node's own namespace are answered in-process; everything else runs its
// query.
import { HOST, type Probe, type NodeFacts, type Predicate } from '../model/plan.ts';
import { holds, type ProbeOutput } from '../planner/predicate.ts';
import type { Runner } from './runner.ts';
import { inNs } from './namespaces.ts';
import type { NodeSystem } from './system.ts';
import { readIfindexes, bindArgv, bindText, MissingLink } from './ifindex.ts';
import type { ModeInspector, ModeReport } from '../planner/mode.ts';
import type { NetworkConfig } from '../model/config.ts';

/** In-process answer, or null when this probe needs a process. */
export function fastProbe(probe: Probe, sys: NodeSystem): ProbeOutput | null {
  if (probe.ns !== HOST) return null;
  switch (probe.mech) {
    case 'links':
      return { exitCode: 0, stdout: '', json: sys.linkNames().map((ifname) => ({ ifname })) };
    case 'neigh':
      return { exitCode: 0, stdout: '', json: sys.neighbours(probe.dev) };
    case 'sysctl':
      return { exitCode: 0, stdout: sys.readSysctl(probe.key) ?? '' }; // -e: an absent key prints nothing
    case 'file': {
      const content = sys.readFile(probe.path);
      return content === null ? { exitCode: 1, stdout: '' } : { exitCode: 0, stdout: content };
    }
    case 'path': {
      const info = sys.statPath(probe.path, probe.list);
      return info === null ? { exitCode: 1, stdout: '' } : { exitCode: 0, stdout: JSON.stringify([info]), json: [info] };
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
  if (probe.mech === 'file' || probe.mech === 'path') return { exitCode: 1, stdout: '' }; // files live in the node's namespace only
  const r = await runner.run(inNs(facts, probe.ns, probe.argv));
  const out: ProbeOutput = { exitCode: r.exitCode, stdout: r.stdout };
  if (r.exitCode === 0 && /^\s*[[{]/.test(r.stdout)) {
    try {
      out.json = JSON.parse(r.stdout);
    } catch { /* not JSON: JSON predicates see nothing */ }
  }
  return out;
}

function bindPredicate(p: Predicate, indexes: Map<string, number>): Predicate {
  if ('$not' in p) return { $not: bindPredicate(p.$not, indexes) };
  if ('$text' in p) return { $text: bindText(p.$text, indexes) };
  return p;
}

/** The probe with its late-bound ifindexes in place, or null when one of those links is gone
 *  (then nothing that names it can be in effect). */
async function bound(probe: Probe, facts: NodeFacts, runner: Runner, sys: NodeSystem): Promise<Probe | null> {
  if (probe.mech !== 'exec' || !probe.ifindexOf?.length || !sys.nsExists(probe.ns)) return probe;
  try {
    const indexes = await readIfindexes(probe.ns, probe.ifindexOf, facts, runner, sys);
    return { ...probe, argv: bindArgv(probe.argv, indexes), expect: bindPredicate(probe.expect, indexes) };
  } catch (e) {
    if (e instanceof MissingLink) return null;
    throw e;
  }
}

export async function runProbe(probe: Probe, facts: NodeFacts, runner: Runner, sys: NodeSystem): Promise<boolean> {
  const p = await bound(probe, facts, runner, sys);
  if (p === null) return holds(probe.expect, { exitCode: 1, stdout: '' });
  return holds(p.expect, await queryOutput(p, facts, runner, sys));
}

/**
 * Answers a planner's read-only queries, in order, by name: each one's parsed JSON (or text). A
 * query that fails reads null; with `strict`, a failed query is an error instead (planning on a
 * partial view could remove what is still wanted), except a `file` or `path` query, for which
 * "nothing there" is the answer.
 */
export async function runQueries(queries: Record<string, Probe>, facts: NodeFacts, runner: Runner, sys: NodeSystem, strict = false): Promise<Record<string, unknown>> {
  const observed: Record<string, unknown> = {};
  for (const [name, probe] of Object.entries(queries)) {
    const out = await queryOutput(probe, facts, runner, sys);
    if (strict && out.exitCode !== 0 && probe.mech !== 'file' && probe.mech !== 'path') throw new Error(`node query ${name} failed (exit ${out.exitCode})`);
    observed[name] = out.exitCode === 0 ? (out.json ?? out.stdout) : null;
  }
  return observed;
}

/** A mode's operator view of the node, read now: its queries (a failed one reads null), then the
 *  ones that depend on them, then its report. */
export async function inspectWith<S>(inspect: ModeInspector<S>, config: NetworkConfig<string, S>, facts: NodeFacts, runner: Runner, sys: NodeSystem): Promise<ModeReport> {
  const observed = await runQueries(inspect.observe(config, facts), facts, runner, sys);
  if (inspect.observeMore) Object.assign(observed, await runQueries(inspect.observeMore(config, facts, observed), facts, runner, sys));
  return inspect.report(config, facts, observed);
}
