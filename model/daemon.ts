// Long-running programs a mode's node state needs beside the kernel's (BIRD for ipip): what the
// mode declares (a DaemonSpec, plain data from the pure node planner) and what the agent reports
// of them (status, peer sessions).

/** The literal an argv element of `DaemonSpec.validate` holds where the candidate file's path goes. */
export const CONFIG_PATH_ARG = '{config}';

/** A command and what its output must show to count as success (exit 0 and, when given, a line
 *  matching `expectStdout`, a regular expression applied per line). */
export interface DaemonCommand {
  argv: string[];
  expectStdout?: string;
}

/**
 * A daemon the node needs, as the node planner wants it now. The agent runs one per name: it
 * writes the configuration (rendered from `config.template` with `config.view`) only after
 * `validate` accepted it, atomically, and asks a running daemon to `reload` only when the text
 * changed; it starts `argv` (output to `logFile`, never inherited), restarts it when it dies
 * (with `recoverArgs`), and stops it when the agent stops (`gracefulStop` first, so peers keep
 * what it gave them while it restarts). Every path is the node's own: several simulated nodes
 * share a machine.
 */
export interface DaemonSpec {
  name: string;
  /** the foreground program and its arguments; they must name `pidFile` (that is how an instance
   *  an earlier agent left running is recognised and replaced) */
  argv: string[];
  /** added to `argv` when a start should take over state the last instance left behind */
  recoverArgs: string[];
  /** start the first instance with `recoverArgs` (the node still holds what a previous one made) */
  recover: boolean;
  config: {
    path: string;
    /** a template of templates/ (rendered by the agent: the plugin never loads the renderer) */
    template: string;
    view: unknown;
    /** file mode; 0600 when it holds a secret */
    mode: number;
    /** secret strings the text holds: never logged (blanked in every message) */
    secrets: string[];
  };
  /** checks a candidate configuration; CONFIG_PATH_ARG stands for its path */
  validate: string[];
  /** exits 0 once the daemon answers */
  ready: string[];
  /** makes a running daemon take the new configuration */
  reload: DaemonCommand;
  /** run after the node plan changed the node while the daemon ran (a device it uses appeared) */
  refresh: DaemonCommand | null;
  /** asks for a stop that peers ride out (graceful restart); SIGTERM otherwise or when it fails */
  gracefulStop: DaemonCommand | null;
  /** where the daemon writes its PID */
  pidFile: string;
  logFile: string;
  /** a read-only query whose output the mode's `sessions` parses (status, metrics) */
  status: DaemonCommand | null;
}

export interface RouteCounts {
  imported: number;
  filtered: number;
  exported: number;
  preferred: number;
}

/** A routing session of a node daemon with a peer (a BGP session of BIRD). */
export interface PeerSession {
  /** the daemon's name for it, e.g. node_198_18_0_12 */
  name: string;
  peer: string;
  peerAs: number | null;
  localAs: number | null;
  /** the protocol's state, e.g. BGP Established, Active, Connect, Idle */
  state: string;
  established: boolean;
  /** when the state last changed: the daemon's text, and epoch ms when it could be read */
  since: string;
  sinceMs: number | null;
  lastError: string | null;
  routes: RouteCounts;
}

/** How a supervised daemon runs. */
export interface DaemonRunState {
  running: boolean;
  pid: number | null;
  startedAt: string | null;
  /** reloads that succeeded */
  reloads: number;
  /** times it was started again after it died */
  restarts: number;
  lastReloadAt: string | null;
  lastError: string | null;
  /** its configuration file */
  config: string;
}

/** What the agent reports of one daemon. */
export interface DaemonStatus extends DaemonRunState {
  name: string;
  /** null when the mode reads no sessions or the query failed (see sessionsError) */
  sessions: PeerSession[] | null;
  sessionsError?: string;
}
