// Simulated BGP nodes for root-level tests and the BGP benchmark: node namespaces on an underlay
// bridge (198.18.0.0/15), each with a real BIRD run by agent/bird/supervisor.ts on a
// configuration from planner/bird/view.ts, and gobgpd as an independent BGP speaker. Everything
// carries the caller's prefix; close() stops every process by PID and removes every namespace
// and file, also after a failure.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { addNetns, delNetns, inNetns, sh } from './netns.ts';
import { BirdSupervisor } from '../../agent/bird/supervisor.ts';
import { birdView, type BgpSettings, type BirdNode } from '../../planner/bird/view.ts';
import { renderBirdConf } from '../../planner/bird/render.ts';
import { ProcessRunner, startDaemon } from '../../executor/runner.ts';
import { findTool } from '../../executor/facts.ts';
import { stopPid, pidAlive } from '../../lib/process.ts';
import { waitUntil } from '../../lab/sys.ts';

export const UNDERLAY_SUBNET = '198.18.0.0/15';
/** The agent's route protocol: the blackhole of a node's own block is the agent's, not BIRD's. */
export const AGENT_PROTO = 151;
export const BIRD_PROTO = 12;
/** machine-notes: iBGP Established in ~0.9 s with these */
export const FAST_TIMERS = { holdTime: 9, keepaliveTime: 3, connectDelayTime: 1, connectRetryTime: 2, errorWaitTime: [1, 5] as [number, number] };

/** Why the BGP tests cannot run here, or undefined when they can. */
export function bgpSkipReason(extra: string[] = []): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  for (const t of ['ip', 'nsenter', 'bird', 'birdc', ...extra]) {
    if (!existsSync(findTool(t))) return `needs ${t} (Debian ${t.startsWith('gobgp') ? 'gobgpd' : t.startsWith('bird') ? 'bird2' : 'iproute2/util-linux'}; scripts/setup.sh installs it)`;
  }
  return undefined;
}

export interface Log {
  lines: string[];
  debug(msg: string, extra?: Record<string, unknown>): void;
  info(msg: string, extra?: Record<string, unknown>): void;
  warn(msg: string, extra?: Record<string, unknown>): void;
  error(msg: string, extra?: Record<string, unknown>): void;
}

/** A logger that keeps its lines (JSON, as the agent's logger writes them) for assertions. */
export function memoryLog(): Log {
  const lines: string[] = [];
  const at = (level: string) => (msg: string, extra: Record<string, unknown> = {}) => void lines.push(JSON.stringify({ level, msg, ...extra }));
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export interface SimNode extends BirdNode {
  index: number;
  underlaySubnet: string;
  netns: string;
  netnsPath: string;
  block: string;
  sup: BirdSupervisor;
  log: Log;
  dir: string;
}

export interface KernelRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  flags?: string[];
  type?: string;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until `probe` gives something other than null/false; throws `what()` at the deadline. */
export const waitFor = <T>(probe: () => Promise<T | null | false> | T | null | false, timeoutMs: number, what: () => string, everyMs = 25): Promise<T> =>
  waitUntil(async () => probe(), timeoutMs, what, everyMs);

export class BgpLab {
  readonly dir: string;
  readonly underlay: string;
  readonly nodes: SimNode[] = [];
  private readonly netns: string[] = [];
  private readonly pids: number[] = [];
  private readonly runner = new ProcessRunner();

  constructor(readonly prefix: string) {
    this.dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
    this.underlay = `${prefix}u`;
    this.addNs(this.underlay);
    inNetns(this.underlay, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    inNetns(this.underlay, ['ip', 'link', 'set', 'br0', 'up']);
  }

  private addNs(name: string): string {
    this.netns.push(name);
    return addNetns(name);
  }

  /** A namespace wired to the underlay bridge with `ip/prefix` on its eth0 (and a default route via `gateway`). */
  wire(tag: string, ip: string, prefix = 15, gateway?: string): { netns: string; netnsPath: string } {
    const netns = `${this.prefix}${tag}`;
    const netnsPath = this.addNs(netns);
    const port = `${this.prefix}${tag}`.slice(0, 13) + 'p';
    sh(['ip', 'link', 'add', 'eth0', 'netns', netns, 'type', 'veth', 'peer', 'name', port, 'netns', this.underlay]);
    inNetns(this.underlay, ['ip', 'link', 'set', port, 'master', 'br0', 'up']);
    inNetns(netns, ['ip', 'addr', 'add', `${ip}/${prefix}`, 'dev', 'eth0']);
    inNetns(netns, ['ip', 'link', 'set', 'eth0', 'up']);
    if (gateway) inNetns(netns, ['ip', 'route', 'add', 'default', 'via', gateway]);
    return { netns, netnsPath };
  }

  /** A node with block 10.244.<index>.0/24, its blackhole route (the agent's), and a supervisor. */
  addNode(index: number, at: { ip?: string; subnet?: string; gateway?: string } = {}): SimNode {
    const ip = at.ip ?? `198.18.0.${10 + index}`;
    const underlaySubnet = at.subnet ?? UNDERLAY_SUBNET;
    const { netns, netnsPath } = this.wire(`n${index}`, ip, Number(underlaySubnet.split('/')[1]), at.gateway);
    const block = `10.244.${index}.0/24`;
    inNetns(netns, ['ip', 'route', 'add', 'blackhole', block, 'proto', String(AGENT_PROTO)]);
    const dir = join(this.dir, `n${index}`);
    mkdirSync(dir, { recursive: true });
    const log = memoryLog();
    const sup = new BirdSupervisor({
      paths: { config: join(dir, 'bird.conf'), socket: join(dir, 'bird.ctl'), pidFile: join(dir, 'bird.pid'), logFile: join(dir, 'bird.log') },
      runner: this.runner,
      log,
      netns: netnsPath,
      backoff: { initialMs: 100, maxMs: 1000 },
    });
    const node: SimNode = { index, name: `n${index}`, underlayIp: ip, underlaySubnet, blocks: [block], block, netns, netnsPath, sup, log, dir };
    this.nodes.push(node);
    return node;
  }

  /** Renders and applies the node's configuration for this registry. */
  async configure(node: SimNode, registry: BirdNode[], bgp: Partial<BgpSettings> = {}) {
    const view = birdView({
      self: { name: node.name, underlayIp: node.underlayIp, underlaySubnet: node.underlaySubnet, blocks: node.blocks },
      nodes: registry.map((n) => ({ name: n.name, underlayIp: n.underlayIp, blocks: n.blocks })),
      bgp: { ipipMode: 'never', timers: FAST_TIMERS, ...bgp },
    });
    return node.sup.apply(renderBirdConf(view), view.secrets);
  }

  routes(node: { netns: string }, proto = BIRD_PROTO): KernelRoute[] {
    return JSON.parse(inNetns(node.netns, ['ip', '-j', 'route', 'show', 'proto', String(proto)]).stdout || '[]');
  }

  /** Starts gobgpd in its own namespace with a TOML config; returns its API address. */
  async startGobgp(tag: string, ip: string, asn: number, neighbors: { address: string; asn: number; password?: string }[]): Promise<{ netns: string; pid: number }> {
    const { netns, netnsPath } = this.wire(tag, ip);
    const conf = join(this.dir, `${tag}-gobgpd.toml`);
    const lines = [`[global.config]`, `  as = ${asn}`, `  router-id = "${ip}"`, `  local-address-list = ["${ip}"]`];
    for (const n of neighbors) {
      lines.push('[[neighbors]]', '  [neighbors.config]', `    neighbor-address = "${n.address}"`, `    peer-as = ${n.asn}`);
      if (n.password) lines.push(`    auth-password = "${n.password}"`);
      lines.push('  [neighbors.timers.config]', '    connect-retry = 1', '    hold-time = 9', '    keepalive-interval = 3');
    }
    writeFileSync(conf, lines.join('\n') + '\n', { mode: 0o600 });
    const pid = await startDaemon(
      [findTool('nsenter'), `--net=${netnsPath}`, '--', findTool('gobgpd'), '-f', conf, '--api-hosts', '127.0.0.1:50051', '--pprof-disable', '-p', '-l', 'info'],
      { logFile: join(this.dir, `${tag}-gobgpd.log`) },
    );
    this.pids.push(pid);
    await waitFor(() => this.gobgp(netns, ['neighbor']).code === 0, 10_000, () => `gobgpd did not answer (log ${join(this.dir, `${tag}-gobgpd.log`)})`);
    return { netns, pid };
  }

  gobgp(netns: string, args: string[]): { code: number; stdout: string; stderr: string } {
    return inNetns(netns, [findTool('gobgp'), '-u', '127.0.0.1', '-p', '50051', ...args], { allowFail: true });
  }

  /** Stops every BIRD (through its supervisor, then any left by PID) and gobgpd, removes everything. */
  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.sup.stop().catch(() => undefined)));
    for (const pid of [...this.pids, ...this.strays()]) await stopPid(pid, 2000);
    for (const ns of this.netns.reverse()) delNetns(ns);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Processes whose command line names this lab's directory (a BIRD a failed test left). */
  private strays(): number[] {
    const out: number[] = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(this.dir) && pidAlive(Number(d))) out.push(Number(d));
      } catch { /* gone */ }
    }
    return out;
  }
}
