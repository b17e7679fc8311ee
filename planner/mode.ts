// The mode seam: everything a mode is, in one object. A mode owns its config section (schema
// and parser), the tools it needs, its pod plan and result, and its node plan; the registry
// lists modes, and every other list of modes (schemas, validators, STATUS, agent, lab, docs) is
// derived from it.
import type { NetworkConfig, CommonConfig } from '../model/config.ts';
import type { NodeFacts, PlanCommand, Probe, Step } from '../model/plan.ts';
import type { Lease } from '../model/lease.ts';
import type { NodeRecord } from '../model/node.ts';
import type { Result } from '../model/result.ts';
import type { DaemonSpec, PeerSession } from '../model/daemon.ts';

/** A JSON Schema (draft 2019-09) object. */
export type JsonSchema = Record<string, unknown>;

export interface PlanRequest<S = unknown> {
  command: PlanCommand;
  config: NetworkConfig<string, S>;
  containerId: string;
  ifName: string;
  netns: string;
  lease: Lease;
  facts: NodeFacts;
  /** CNI_ARGS as KEY=VALUE pairs (e.g. MAC), when the runtime passed any */
  args?: Record<string, string>;
}

/** What a mode may check before anything is leased: the request without its address. */
export type PreflightRequest<S = unknown> = Omit<PlanRequest<S>, 'lease'>;

/** Where a mode's pod addresses come from. */
export interface ModeAddressing {
  /** `block`: a per-node block of the cluster subnet (routed modes); `subnet`: the subnet is
   *  the node network itself and the pool is a range of it (ipvlan, macvlan) */
  pool: 'block' | 'subnet';
  /** the prefix length a `subnet` written without one means (the original vxlan: /16) */
  bareSubnetPrefix?: number;
}

/** The node-level view the agent hands to a node plan. */
export interface NodeContext<S = unknown> {
  config: NetworkConfig<string, S>;
  facts: NodeFacts;
  /** this node as the registry has it */
  self: NodeRecord;
  /** every node currently routable, this one included */
  nodes: NodeRecord[];
  /** kernel route protocol number that marks the routes testcni owns */
  routeProtocol: number;
  /** the underlay network this node's address is on (CIDR), when the agent knows it */
  underlaySubnet: string | null;
  /** this node's directories: `run` for sockets and PID files, `state` for files that persist */
  dirs: { run: string; state: string };
  /** the text of the secret files the node planner named (secretFiles), by field */
  secrets: Record<string, string>;
}

/**
 * The node-scoped state a mode needs (host-gw: routes to other nodes' blocks and forwarding),
 * reconciled by the agent: it runs `observe`'s queries, then applies the steps `plan` returns
 * for what they showed. Both are pure.
 */
export interface NodePlanner<S = unknown> {
  /** read-only queries (JSON or text output), by name */
  observe(ctx: NodeContext<S>): Record<string, Probe>;
  /** the steps that take the node from what `observed` shows to what it should hold;
   *  `observed` holds each query's parsed JSON (or text), null when it failed */
  plan(ctx: NodeContext<S>, observed: Record<string, unknown>): Step[];
  /** Queries that need observe's answers (a device's settings, asked only once it exists): run
   *  after observe's, their answers merged into `observed`. */
  observeMore?(ctx: NodeContext<S>, observed: Record<string, unknown>): Record<string, Probe>;
  /** the routes this mode's node state holds, for status displays */
  routes?(observed: Record<string, unknown>): { dst: string; via: string }[];
  /** What the node still waits for that others bring (routes learned over BGP), or null: the
   *  agent counts as converged only once this is null, and looks again until it is. */
  waitingFor?(ctx: NodeContext<S>, observed: Record<string, unknown>): string | null;
  /** programs the node plan and its daemons run beyond the base set (resolved by the agent) */
  tools?(config: NetworkConfig<string, S>): string[];
  /** Files holding secrets (passwords), by the config field that names them. The agent reads
   *  them (an unreadable one is code 7 naming the field) and hands their text in ctx.secrets. */
  secretFiles?(config: NetworkConfig<string, S>): Record<string, string>;
  /** Checks a secret file's text (throws CniError code 7 naming the field, never echoing it). */
  checkSecret?(field: string, text: string): void;
  /** the long-running programs the node needs, configured for this context */
  daemons?(ctx: NodeContext<S>, observed: Record<string, unknown>): DaemonSpec[];
  /** a daemon's `status` output as peer sessions */
  sessions?(daemon: string, output: string): PeerSession[];
  /** what `testcni uninstall` removes of this mode's node state */
  teardown?: NodeTeardownPlanner<S>;
}

/** The context of an uninstall: no registry, just this node, its network and the agent's
 *  directories (where a daemon it ran keeps its files). */
export type NodeTeardownContext<S = unknown> = Pick<NodeContext<S>, 'config' | 'facts' | 'routeProtocol' | 'dirs'>;

/**
 * The node state a mode made (what pods share and DEL never removes), found and removed on
 * uninstall. Pure, like the node plan: `plan` turns what the queries showed into the steps that
 * remove only what it can tell is testcni's, and says what it found and left alone.
 */
export interface NodeTeardownPlanner<S = unknown> {
  /** programs its queries and steps run beyond ip and the node plan's (facts.tools) */
  tools?: readonly string[];
  /** Part of that state lives outside the node's network namespace (vxlan: bpffs pins), so
   *  deleting a simulated node's namespace does not remove it: `testcni lab down` runs this plan. */
  outsideNetns?: boolean;
  observe(ctx: NodeTeardownContext<S>): Record<string, Probe>;
  plan(ctx: NodeTeardownContext<S>, observed: Record<string, unknown>): { steps: Step[]; kept: string[] };
}

export interface HostPathNeed {
  name: string;
  path: string;
  propagation?: 'None' | 'HostToContainer';
  why: string;
}

/** What the node agent's container needs for a mode's node state, for the DaemonSet that runs it
 *  (`testcni manifests`): each need with the reason an operator reviewing it reads. */
export interface ModeDeploy {
  /** Linux capabilities (without CAP_) the agent gets beyond none */
  capabilities: { name: string; why: string }[];
  /** host paths mounted into the agent at the same path, for the network as configured */
  hostPaths?: (config: NetworkConfig) => HostPathNeed[];
  /** programs the image must carry for the agent (beyond testcni and iproute2) */
  programs?: { name: string; package: string; why: string }[];
  /** why the node plan sets the node's net.* sysctls: the agent then reaches them through a
   *  mount of the node's /proc/sys/net (a container's own /proc/sys is read-only) */
  netSysctls?: string;
  /** reference plugins that cannot work chained after this mode, each with why */
  unchainable?: Record<string, string>;
}

/** An option of `testcni lab up` that a mode declares (e.g. --ipip-mode). */
export interface LabFlag {
  /** the flag without its dashes */
  name: string;
  values: readonly string[];
  default: string;
  description: string;
}

/** What `testcni lab` needs to know of a mode beyond the registry entry. */
export interface ModeLab {
  flags: readonly LabFlag[];
  /** network config keys (the mode's section) the lab's agents get for these flag values */
  networkConfig(values: Record<string, string>): Record<string, unknown>;
  /** kernel device types the nodes must be able to create for these values, each with why;
   *  the lab probes the kernel once and refuses with the reason when one is missing */
  linkTypes(values: Record<string, string>): { type: string; why: string }[];
}

/**
 * Node state that pods leave behind when their DEL never ran in full (vxlan: endpoint entries
 * whose host veth is gone), found by queries and removed by steps. CNI GC runs it; a mode's node
 * plan may include the same steps. Pure.
 */
export interface NodeSweep<S = unknown> {
  observe(config: NetworkConfig<string, S>, facts: NodeFacts): Record<string, Probe>;
  plan(config: NetworkConfig<string, S>, facts: NodeFacts, observed: Record<string, unknown>): Step[];
}

/** One figure of a mode's operator view: shown by `testcni status`, exported by the agent. */
export interface ModeGauge {
  /** metric name without the testcni_ prefix, e.g. bpf_map_entries */
  name: string;
  help: string;
  labels: Record<string, string>;
  value: number;
}

/** What a mode shows an operator about the node state it keeps (status and metrics). */
export interface ModeReport {
  /** titled tables for `testcni status`: a header row, then rows */
  tables: { title: string; rows: string[][] }[];
  gauges: ModeGauge[];
  /** what is wrong, in a line each */
  problems: string[];
}

/** A mode's operator view: read-only queries, then a report of what they showed. Pure. */
export interface ModeInspector<S = unknown> {
  observe(config: NetworkConfig<string, S>, facts: NodeFacts): Record<string, Probe>;
  /** queries that depend on what `observe` showed (run after it) */
  observeMore?(config: NetworkConfig<string, S>, facts: NodeFacts, observed: Record<string, unknown>): Record<string, Probe>;
  report(config: NetworkConfig<string, S>, facts: NodeFacts, observed: Record<string, unknown>): ModeReport;
}

export interface ModeDefinition<M extends string = string, S = unknown> {
  name: M;
  /** one line for help texts and docs */
  summary: string;
  /** the top-level keys this mode adds to the network config (JSON Schema `properties`) */
  schema: Record<string, JsonSchema>;
  addressing: ModeAddressing;
  /** checks what a schema cannot and fills in defaults; throws CniError code 7 naming the field */
  parse(raw: Record<string, unknown>, common: CommonConfig): S;
  /** programs the mode runs beyond the base set (ip, nsenter, sysctl), by name */
  tools(config: NetworkConfig<string, S>): string[];
  /** compiled BPF objects its plans load (facts.objects), by file name */
  objects?(config: NetworkConfig<string, S>): string[];
  /** the ordered ADD steps; DEL and CHECK are derived from them */
  planAdd(req: PlanRequest<S>): Step[];
  resultOf(req: PlanRequest<S>): Result;
  /** The node device the mode's pods hang off when the mode names its own (ipvlan, macvlan:
   *  their `master`); facts.uplink and facts.uplinkMtu then describe it, and its MTU is read on
   *  every ADD (null: no such device). Default: the configured `uplink`, else the default
   *  route's interface. */
  uplinkOf?(config: NetworkConfig<string, S>): string | null;
  /** Read-only node queries an ADD plan depends on (e.g. the mode a master already carries),
   *  run before anything is leased; the answers reach `preflight` and `planAdd` as
   *  facts.observed (parsed JSON or text, null when a query failed). Pure. */
  observe?(config: NetworkConfig<string, S>, facts: NodeFacts): Record<string, Probe>;
  /** Checks an ADD against the node facts before anything is leased or changed (the master
   *  exists, the MTU fits, ...): throws CniError code 7 naming the field. compile() runs it for
   *  every ADD plan, the ADD verb before it leases an address. Pure. */
  preflight?(req: PreflightRequest<S>): void;
  /** node-scoped state, reconciled by the agent; null when the mode has none */
  node: NodePlanner<S> | null;
  /** what the agent's container needs for that state (none when absent) */
  deploy?: ModeDeploy;
  /** what CNI GC removes beyond the attachments it knows of */
  gc?: NodeSweep<S>;
  /** the operator view of its node state (`testcni status`, the agent's metrics) */
  inspect?: ModeInspector<S>;
  /** why `testcni lab` cannot run this mode on this build, or null when it can */
  labUnsupported: string | null;
  /** the mode's own `lab up` options and what they need of the kernel */
  lab?: ModeLab;
  /** a validator of the mode's closed schema, for a mode registered at run time (the build
   *  compiles the built-in modes' validators ahead of time; see schemas/compose.ts) */
  validator?: (data: unknown) => boolean;
}

/** Any mode, whatever its section type (the registry's element type). */
export type AnyMode = ModeDefinition<string, any>;
