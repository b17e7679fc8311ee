// Answers "is this step already in effect?". Probes that only ask which links exist, or read a
// sysctl, in the node's own namespace are answered from /proc without starting a process.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { HOST, type Probe, type Pattern, type NodeFacts } from '../planner/types.ts';
import { holds, patternKeys, type ProbeOutput } from '../planner/predicate.ts';
import type { Runner } from './runner.ts';
import { inNs, nsExists } from './namespaces.ts';

/** Link names of the calling process's netns (/proc/self/net is per namespace; /sys is not). */
export function linkNames(): string[] {
  const text = readFileSync('/proc/self/net/dev', 'utf8');
  return text
    .split('\n')
    .slice(2)
    .map((l) => l.split(':')[0]!.trim())
    .filter(Boolean);
}

export function sysctlPath(key: string): string {
  return `/proc/sys/${key.replace(/\./g, '/')}`;
}

function isIpLinkShowAll(argv: string[]): boolean {
  return basename(argv[0] ?? '') === 'ip' && argv.slice(1).join(' ') === '-j link show';
}

/** In-process answer, or null when this probe needs its real query. */
export function fastProbe(probe: Probe): ProbeOutput | null {
  if (probe.ns !== HOST) return null;
  const expect = probe.expect as Record<string, unknown>;
  const pattern = (expect.$some ?? expect.$none ?? (expect.$not as Record<string, unknown> | undefined)?.$some ??
    (expect.$not as Record<string, unknown> | undefined)?.$none) as Pattern | undefined;
  if (isIpLinkShowAll(probe.argv) && pattern !== undefined) {
    const keys = patternKeys(pattern);
    if ([...keys].every((k) => k === 'ifname')) {
      return { exitCode: 0, stdout: '', json: linkNames().map((ifname) => ({ ifname })) };
    }
  }
  const [prog, ...args] = probe.argv;
  if (basename(prog ?? '') === 'sysctl' && args.length === 3 && args[0] === '-n' && args[1] === '-e') {
    try {
      return { exitCode: 0, stdout: readFileSync(sysctlPath(args[2]!), 'utf8') };
    } catch {
      return { exitCode: 0, stdout: '' }; // -e: an absent key prints nothing
    }
  }
  return null;
}

export async function runProbe(probe: Probe, facts: NodeFacts, runner: Runner): Promise<boolean> {
  if (!nsExists(probe.ns)) return holds(probe.expect, { exitCode: 1, stdout: '' });
  const fast = fastProbe(probe);
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
