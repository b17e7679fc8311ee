// A command in a plan's namespace: the node's own, or a pod netns entered with nsenter.
import { HOST, type Ns, type NodeFacts } from '../model/plan.ts';
import { inNetnsArgv } from '../lib/netns.ts';

export function inNs(facts: NodeFacts, ns: Ns, argv: string[]): string[] {
  return ns === HOST ? argv : inNetnsArgv(facts.tools.nsenter, ns, argv);
}
