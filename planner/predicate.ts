// Evaluates probe predicates against a probe's output (pure).
import type { Pattern, Predicate } from '../model/plan.ts';

export interface ProbeOutput {
  exitCode: number;
  stdout: string;
  /** parsed stdout, when it was JSON */
  json?: unknown;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function matches(pattern: Pattern, value: unknown): boolean {
  if (pattern === null || typeof pattern !== 'object') return pattern === value;
  if ('$some' in pattern) return Array.isArray(value) && value.some((v) => matches(pattern.$some as Pattern, v));
  if ('$none' in pattern) return !Array.isArray(value) || !value.some((v) => matches(pattern.$none as Pattern, v));
  if (!isObj(value)) return false;
  return Object.entries(pattern).every(([k, p]) => matches(p as Pattern, value[k]));
}

export function holds(pred: Predicate, out: ProbeOutput): boolean {
  if ('$not' in pred) return !holds(pred.$not, out);
  if ('$exit' in pred) return out.exitCode === pred.$exit;
  if ('$text' in pred) return out.exitCode === 0 && out.stdout.trim() === pred.$text;
  // JSON predicates: a failed query or non-JSON output counts as "nothing there".
  const data = out.exitCode === 0 && out.json !== undefined ? out.json : [];
  return matches(pred as Pattern, data);
}

/** The keys a pattern reads, for deciding whether a cheaper data source can answer it. */
export function patternKeys(pattern: Pattern, into = new Set<string>()): Set<string> {
  if (pattern !== null && typeof pattern === 'object') {
    for (const [k, v] of Object.entries(pattern)) {
      if (k !== '$some' && k !== '$none') into.add(k);
      patternKeys(v as Pattern, into);
    }
  }
  return into;
}

export function negate(pred: Predicate): Predicate {
  return '$not' in pred ? pred.$not : { $not: pred };
}
