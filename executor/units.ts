// Groups consecutive steps into execution units: `ip` steps in one namespace share one
// `ip -batch -` process, sysctl steps one `sysctl -w` process; node sysctls need no process.
import { basename } from 'node:path';
import { HOST, type Step, type NodeFacts } from '../planner/types.ts';
import { inNs } from './namespaces.ts';

export type UnitKind = 'ip' | 'sysctl' | 'one';

export interface Unit {
  kind: UnitKind;
  ns: string;
  steps: Step[];
}

export function unitKind(step: Step): UnitKind {
  const prog = basename(step.argv[0] ?? '');
  // ip's batch parser takes no per-line options, so `ip -j ...` runs on its own.
  if (prog === 'ip' && step.input === undefined && !(step.argv[1] ?? '-').startsWith('-')) return 'ip';
  if (prog === 'sysctl' && step.argv.slice(1, 4).join(' ') === '-q -e -w' && step.argv.length === 5) return 'sysctl';
  return 'one';
}

export function canJoin(unit: Unit, step: Step): boolean {
  return unit.kind !== 'one' && unit.kind === unitKind(step) && unit.ns === step.ns && unit.steps[0]!.argv[0] === step.argv[0];
}

// ip -batch splits lines on blanks and gives quotes, "\" and "#" meaning: refuse such tokens.
const UNSAFE_TOKEN = /[\s"'\\#]/;

export function batchLine(argv: string[]): string {
  const args = argv.slice(1);
  for (const a of args) {
    if (a === '' || UNSAFE_TOKEN.test(a)) throw new Error(`argument ${JSON.stringify(a)} cannot be passed through ip -batch`);
  }
  return args.join(' ');
}

export interface UnitCommand {
  argv: string[];
  input?: string;
}

/** The process a unit runs as, or null when it is done in-process (node sysctls). */
export function unitCommand(unit: Unit, facts: NodeFacts, opts: { force?: boolean } = {}): UnitCommand | null {
  const first = unit.steps[0]!;
  switch (unit.kind) {
    case 'ip': {
      const argv = [first.argv[0]!, ...(opts.force ? ['-force'] : []), '-batch', '-'];
      return { argv: inNs(facts, unit.ns, argv), input: unit.steps.map((s) => batchLine(s.argv)).join('\n') + '\n' };
    }
    case 'sysctl':
      if (unit.ns === HOST) return null;
      return { argv: inNs(facts, unit.ns, [...first.argv.slice(0, 4), ...unit.steps.map((s) => s.argv[4]!)]) };
    case 'one':
      return { argv: inNs(facts, unit.ns, first.argv), ...(first.input !== undefined ? { input: first.input } : {}) };
  }
}

/** Lines (1-based) that `ip -batch` reported as failed: "Command failed -:N". */
export function failedBatchLines(stderr: string): number[] {
  return [...stderr.matchAll(/Command failed -:(\d+)/g)].map((m) => Number(m[1]));
}
