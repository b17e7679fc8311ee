// Answers "is this step already in effect?". Probes that only ask which links exist, or read a
// sysctl, in the node's own namespace are answered from /proc without starting a process.
import { basename } from 'node:path';
import { HOST, type Probe, type Pattern, type NodeFacts } from '../planner/types.ts';
import { holds, patternKeys, type ProbeOutput } from '../planner/predicate.ts';
import type { Runner } from './runner.ts';
import { inNs } from './namespaces.ts';
import type { NodeSystem } from './system.ts';

function isIpLinkShowAll(argv: string[]): boolean {
  return basename(argv[0] ?? '') === 'ip' && argv.slice(1).join(' ') === '-j link show';
}

/** In-process answer, or null when this probe needs its real query. */
export function fastProbe(probe: Probe, sys: NodeSystem): ProbeOutput | null {
  if (probe.ns !== HOST) return null;
  const expect = probe.expect as Record<string, unknown>;
  const pattern = (expect.$some ?? expect.$none ?? (expect.$not as Record<string, unknown> | undefined)?.$some ??
    (expect.$not as Record<string, unknown> | undefined)?.$none) as Pattern | undefined;
  if (isIpLinkShowAll(probe.argv) && pattern !== undefined) {
    const keys = patternKeys(pattern);
    if ([...keys].every((k) => k === 'ifname')) {
      return { exitCode: 0, stdout: '', json: sys.linkNames().map((ifname) => ({ ifname })) };
    }
  }
  const [prog, ...args] = probe.argv;
  if (basename(prog ?? '') === 'sysctl' && args.length === 3 && args[0] === '-n' && args[1] === '-e') {
    return { exitCode: 0, stdout: sys.readSysctl(args[2]!) ?? '' }; // -e: an absent key prints nothing
  }
  return null;
}

export async function runProbe(probe: Probe, facts: NodeFacts, runner: Runner, sys: NodeSystem): Promise<boolean> {
  if (!sys.nsExists(probe.ns)) return holds(probe.expect, { exitCode: 1, stdout: '' });
  const fast = fastProbe(probe, sys);
  if (fast) return holds(probe.expect, fast);
  const r = await runner.run(inNs(facts, probe.ns, probe.argv));
  const out: ProbeOutput = { exitCode: r.exitCode, stdout: r.stdout };
  if (r.exitCode === 0 && /^\s*[[{]/.test(r.stdout)) {
    try {
      out.json = JSON.parse(r.stdout);
    } catch { /* not JSON: JSON predicates see nothing */ }
  }
  return holds(probe.expect, out);
}
