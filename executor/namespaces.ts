// Running a command in a namespace: the node's own, or a pod netns entered with nsenter
// (which keeps the root mount namespace, unlike `ip netns exec`).
import { HOST, type Ns, type NodeFacts } from '../planner/types.ts';

export function inNs(facts: NodeFacts, ns: Ns, argv: string[]): string[] {
  return ns === HOST ? argv : [facts.tools.nsenter, `--net=${ns}`, '--', ...argv];
}
