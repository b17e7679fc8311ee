// The Plan/Step model: plain, serialisable data. A step says what to change (its operation,
// typed by mechanism), how to tell whether it is already in effect (its probe) and how to
// reverse it (its undo). The executor reads operations, probes and undos; `describe` is for
// renderers only.

/** The closed set of things a step can do to a node. */
export type StepKind =
  | 'link.add'
  | 'link.del'
  | 'link.set'
  | 'link.wait'
  | 'addr.add'
  | 'addr.del'
  | 'route.add'
  | 'route.del'
  | 'neigh.add'
  | 'sysctl.set'
  | 'iptables.rule'
  | 'file.write'
  | 'fs.mount'
  | 'fs.mkdir'
  | 'fs.rename'
  | 'fs.remove'
  | 'tc.qdisc'
  | 'tc.filter'
  | 'bpf.map.create'
  | 'bpf.load'
  | 'bpf.map.update'
  | 'bpf.map.delete'
  | 'daemon.stop';

/** Pod steps are undone on DEL; node steps are shared by pods and only ever ensured. */
export type Scope = 'pod' | 'node';

/** "host" (the node's own namespace) or the absolute path of a pod netns. */
export type Ns = string;
export const HOST: Ns = 'host';

/**
 * What the executor runs, by mechanism. `argv` is always the whole command a person could run
 * (absolute program first). For `ip`, `tc` and `bpftool` it carries no global options, so
 * consecutive steps of one namespace share one batch process. A `file` operation writes
 * `content` atomically in the node's namespace (no process). A `wait` holds the plan until the
 * links' operational state is up: the kernel turns carrier and queues on asynchronously, and a
 * packet sent before that is dropped.
 */
export type Operation =
  | { mech: 'ip'; argv: string[] }
  | { mech: 'tc'; argv: string[] }
  | { mech: 'bpftool'; argv: string[]; ifindexOf?: string[] }
  | { mech: 'sysctl'; key: string; value: string; argv: string[] }
  | { mech: 'exec'; argv: string[] }
  | { mech: 'file'; path: string; content: string; mode: number }
  | { mech: 'wait'; links: string[]; timeoutMs: number };

export type Mechanism = Operation['mech'];

/**
 * A value the planner cannot know: the ifindex of a link, which exists only once the node has run
 * an earlier step (often of the same plan). A BPF map value holds it as four hex bytes of a u32
 * in host order. A `bpftool` operation or an `exec` query that names the link in `ifindexOf` holds
 * this token where the bytes go, one argv element (or, in a `$text` expectation, one JSON string);
 * the executor reads the link's index in the step's namespace right before the command runs and
 * puts the bytes in its place. `plan --dry-run` shows the token, `--format sh` a shell expression.
 */
export function ifindexToken(dev: string): string {
  return `ifindex(${dev})`;
}

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

/**
 * How to read the state a probe judges. `links` yields `[{ifname}]` only and `sysctl` the value
 * as text: in the node's own namespace both are read from /proc without starting a process.
 * `file` yields the file's content as text (exit 1 when it is missing). `path` yields what is at
 * a path of the node's file system, `[{type: "file"|"directory"|"other", fs}]` (`fs`: the statfs
 * magic of its file system in hex, e.g. "cafe4a11" for bpffs), read in-process (exit 1 when
 * nothing is there); with `list`, a directory's also carries `files`, the files below it two
 * levels deep as sorted relative paths. `neigh` yields the IPv4 neighbour entries of `dev` with
 * a link-layer address, `[{dst, lladdr, state}]` as `ip -j neigh show dev` prints them, in the
 * node's own namespace read from /proc/net/arp without a process (`state` then only tells
 * PERMANENT from the rest).
 */
export type Query =
  | { mech: 'exec'; argv: string[]; ifindexOf?: string[] }
  | { mech: 'links'; argv: string[] }
  | { mech: 'neigh'; dev: string; argv: string[] }
  | { mech: 'sysctl'; key: string; argv: string[] }
  | { mech: 'file'; path: string }
  | { mech: 'path'; path: string; list?: boolean };

export type Probe = { ns: Ns; expect: Predicate } & Query;

/** An operation in a namespace: what an undo runs. */
export type Command = { ns: Ns } & Operation;

export type Step = {
  id: string;
  kind: StepKind;
  scope: Scope;
  ns: Ns;
  /** true when re-running the operation on a state where it is already in effect is harmless */
  idempotent: boolean;
  undo: Command | null;
  undoReason?: string;
  /** the id of an earlier step whose undo this one's makes unnecessary once it is applied for
   *  certain (a rename: the old name no longer exists, deleting the new one is all DEL needs) */
  supersedes?: string;
  /** "is this step already in effect?" */
  probe: Probe | null;
  describe: string;
} & Operation;

/** The command a step (or an undo) runs; a file write runs none. */
export function argvOf(op: Operation): string[] {
  if (op.mech === 'file') throw new Error(`a file write of ${op.path} runs no command`);
  if (op.mech === 'wait') throw new Error(`a wait for ${op.links.join(', ')} runs no command`);
  return op.argv;
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
  result: import('./result.ts').Result | null;
}

/** Absolute paths of the programs a plan runs: the base set, plus what the mode asks for. */
export interface Tools {
  ip: string;
  nsenter: string;
  sysctl: string;
  readonly [name: string]: string;
}

/** Facts about the node, gathered by the executor side and handed to the pure planner. */
export interface NodeFacts {
  tools: Tools;
  /** a process in the node's namespace, used to create a veth peer directly there */
  hostPid: number;
  /** the interface of the node's default route (or the configured uplink), when there is one */
  uplink: string | null;
  /** MTU of the uplink, when it was read (null also when the device does not exist) */
  uplinkMtu: number | null;
  /** answers to the mode's own pre-planning queries (ModeDefinition.observe), by name: parsed
   *  JSON or text, null when the query failed; absent when the mode asked none */
  observed?: Record<string, unknown>;
  /** the node's network namespace (the inode of /proc/self/ns/net): state kept outside it, such
   *  as BPF pins holding its ifindexes, is keyed by it, so simulated nodes never share it */
  netns?: string;
  /** the compiled BPF objects the mode asked for (ModeDefinition.objects), by name */
  objects?: Record<string, BpfObject>;
  /** the kernel's release (uname -r), for settings that depend on it */
  kernel?: string;
}

/** A compiled BPF object on the node: where it is and a digest of its content (a new build is a
 *  new digest: its programs are loaded beside the old ones rather than mistaken for them). */
export interface BpfObject {
  path: string;
  /** 16 hex digits; "missing" when the file could not be read */
  digest: string;
}
