// The Plan/Step model: plain, serialisable data. The executor reads only the fields marked
// for execution; `describe` is for renderers.
import type { Result } from '../cni/result.ts';
import type { NetworkConfig } from '../cni/config.ts';

export type StepKind =
  | 'link.add'
  | 'link.set'
  | 'addr.add'
  | 'route.add'
  | 'route.del'
  | 'neigh.add'
  | 'sysctl.set'
  | 'iptables.rule'
  | 'tc.qdisc'
  | 'tc.filter'
  | 'bpf.map.update'
  | 'file.write'
  | 'bird.reload';

/** Pod steps are undone on DEL; node steps are shared by pods and only ever ensured. */
export type Scope = 'pod' | 'node';

/** "host" (the node's own namespace) or the absolute path of a pod netns. */
export type Ns = string;
export const HOST: Ns = 'host';

/**
 * A predicate over a probe's output. Patterns match JSON: an object pattern matches when each
 * of its keys matches; `$some`/`$none` quantify over arrays. `$text` compares trimmed stdout,
 * `$exit` the exit status (for tools without JSON output), `$not` negates.
 */
export type Pattern = string | number | boolean | null | { $some: Pattern } | { $none: Pattern } | { [key: string]: Pattern };
export type Predicate =
  | { $some: Pattern }
  | { $none: Pattern }
  | { $text: string }
  | { $exit: number }
  | { $not: Predicate };

export interface Probe {
  ns: Ns;
  argv: string[];
  expect: Predicate;
}

export interface Command {
  ns: Ns;
  argv: string[];
}

export interface Step {
  id: string;
  kind: StepKind;
  scope: Scope;
  ns: Ns;
  argv: string[];
  /** stdin for the command (file contents), when it needs one */
  input?: string;
  /** true when re-running argv on a state where it is already in effect is harmless */
  idempotent: boolean;
  undo: Command | null;
  undoReason?: string;
  /** "is this step already in effect?" */
  probe: Probe | null;
  describe: string;
}

export type PlanCommand = 'ADD' | 'DEL' | 'CHECK';

export interface Plan {
  command: PlanCommand;
  network: string;
  containerId: string;
  ifName: string;
  netns: string;
  mode: string;
  inputsDigest: string;
  steps: Step[];
  result: Result | null;
}

/** Facts about the node, gathered by the executor side and handed to the pure planner. */
export interface NodeFacts {
  tools: { ip: string; nsenter: string; sysctl: string; iptables: string };
  /** a process in the node's namespace, used to create a veth peer directly there */
  hostPid: number;
  /** MTU of the uplink, when one was found */
  uplinkMtu: number | null;
}

export interface Lease {
  /** e.g. 10.244.0.5/24 */
  address: string;
  gateway: string;
}

export interface PlanRequest {
  command: PlanCommand;
  config: NetworkConfig;
  containerId: string;
  ifName: string;
  netns: string;
  lease: Lease;
  facts: NodeFacts;
}
