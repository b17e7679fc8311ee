// Batch tools (ip, tc, bpftool) read one command per line from stdin: the arguments must
// survive their line parsers, which split on blanks and give quotes, "\" and "#" meaning.
import { argvOf, type Step } from '../../model/plan.ts';

export { argvOf };

const UNSAFE_TOKEN = /[\s"'\\#]/;

/** A step's argv (program first) as one batch line. */
export function batchLine(step: Step): string {
  const args = argvOf(step).slice(1);
  for (const a of args) {
    if (a === '' || UNSAFE_TOKEN.test(a)) throw new Error(`argument ${JSON.stringify(a)} cannot be passed through a batch`);
  }
  return args.join(' ');
}
