// A throwaway containerd (Debian's 1.6, runc) for the runtime tests and the benchmark: started
// by the test with its own config, inside a node network namespace the test made, so whatever
// the CNI plugins do to "the node" (bridge, routes, sysctls, iptables) lands in that namespace.
//
// It also runs in a private mount namespace, held open by a `sleep` started with `unshare`,
// where a directory of the test is bind-mounted over /run and another over /var/lib: the paths
// containerd 1.6 and libcni do not let a config move (shim sockets and runc state in
// /run/containerd, libcni's result cache in /var/lib/cni) land in the test's directory, and the
// image and netns mounts vanish with the namespace. The sandboxes' cgroups go under a parent
// named after the test's prefix. destroy() stops, by PID, containerd, every process of that
// mount namespace (shims) and of those cgroups (pause), then removes the cgroups and the directory.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  mkdirSync, mkdtempSync, writeFileSync, rmSync, readdirSync, readlinkSync, readFileSync, existsSync, openSync, closeSync,
} from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { NETNS_DIR, PLUGIN, sh } from './netns.ts';
import { pidAlive } from '../../lib/process.ts';
import { CriClient, type SandboxSpec, type SandboxStatus } from './cri.ts';
import { IMAGE_TOOLS, pauseImageSkipReason, type PauseImage } from './oci-image.ts';
import { makeBinDir, PLUGIN_PATH, REFERENCE_CNI_DIR } from './conflist.ts';
import { sleepSync } from './e2e.ts';

const TOOLS = ['containerd', 'containerd-shim-runc-v2', 'ctr', 'runc', 'unshare', 'nsenter', 'mount', 'sleep', 'ip', 'ping', ...IMAGE_TOOLS];
const CGROUP_ROOT = '/sys/fs/cgroup';

function onPath(cmd: string): boolean {
  return ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(join(d, cmd)));
}

/** Why containerd cannot run here, or null when it can. */
export function containerdSkipReason(referencePlugins: string[] = []): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network and mount namespaces, containerd)';
  for (const t of TOOLS) if (!onPath(t)) return `needs ${t} (scripts/setup.sh installs it)`;
  for (const p of ['loopback', ...referencePlugins]) {
    if (!existsSync(join(REFERENCE_CNI_DIR, p))) return `needs ${join(REFERENCE_CNI_DIR, p)} (containernetworking-plugins)`;
  }
  if (!existsSync(PLUGIN)) return `needs the built plugin at ${PLUGIN} (npm run build)`;
  return pauseImageSkipReason();
}

/** Sends `signal`, then SIGKILL after `graceMs`; returns once the process is gone. */
function stopPidSync(pid: number, graceMs = 3000, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid, signal);
  } catch { /* gone */ }
  const deadline = Date.now() + graceMs;
  while (pidAlive(pid) && Date.now() < deadline) sleepSync(20);
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch { /* gone */ }
  while (pidAlive(pid)) sleepSync(10);
}

function mountNsOf(pid: number | 'self'): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return null;
  }
}

/** Every process whose mount namespace is `mntNs`: containerd's shims (and plugins it runs). */
function processesIn(mntNs: string): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => mountNsOf(pid) === mntNs);
}

/** Mount points of namespace files in the mount namespace of `pid`. */
function nsfsMounts(pid: number): string[] {
  return readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')
    .filter((l) => / - nsfs /.test(l))
    .map((l) => l.split(' ')[4]!);
}

/** Every cgroup directory under `/<parent>` (the sandboxes' parent), deepest first, in the v1
 *  hierarchies or v2. */
function cgroupDirs(parent: string): string[] {
  const tops = [join(CGROUP_ROOT, parent), ...readdirSync(CGROUP_ROOT).map((c) => join(CGROUP_ROOT, c, parent))];
  const out: string[] = [];
  const walk = (dir: string) => {
    let subdirs: string[] = [];
    try {
      subdirs = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const d of subdirs) walk(join(dir, d));
    out.push(dir);
  };
  for (const t of tops) if (existsSync(t)) walk(t);
  return out;
}

/** The processes of the sandboxes (pause, in their own mount and pid namespaces). */
function processesInCgroups(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const d of dirs) {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) pids.add(Number(l));
    } catch { /* gone */ }
  }
  return [...pids];
}

function toml(s: string): string {
  return JSON.stringify(s); // a TOML basic string, for the plain paths used here
}

export interface ContainerdOptions {
  /** unique prefix of this test: the temp dir and the sandboxes' cgroup parent carry it */
  prefix: string;
  /** name of the node network namespace (under /var/run/netns) containerd runs in */
  nodeNs: string;
  /** the network: written to conf_dir as the one conflist containerd loads */
  conflist: Record<string, unknown>;
  /** reference plugins linked into bin_dir next to testcni and loopback */
  referencePlugins?: string[];
  image: PauseImage;
}

export class Containerd {
  readonly socket: string;
  readonly binDir: string;
  readonly confDir: string;
  readonly logFile: string;
  readonly cri: CriClient;
  private pid: number | null = null;
  private holderPid: number | null = null;
  private mntNs: string | null = null;
  private destroyed = false;

  private constructor(readonly dir: string, private readonly opts: ContainerdOptions) {
    this.socket = join(dir, 'containerd.sock');
    this.binDir = join(dir, 'cni', 'bin');
    this.confDir = join(dir, 'cni', 'net.d');
    this.logFile = join(dir, 'containerd.log');
    this.cri = new CriClient(this.socket);
  }

  /** Starts containerd and imports the pause image; on failure everything is removed again. */
  static async start(opts: ContainerdOptions): Promise<Containerd> {
    const c = new Containerd(mkdtempSync(join(tmpdir(), `${opts.prefix}-ctrd-`)), opts);
    try {
      c.prepareFiles();
      c.startHolder();
      await c.startDaemon();
      sh(['ctr', '--address', c.socket, '--namespace', 'k8s.io', 'images', 'import', opts.image.archive]);
      return c;
    } catch (e) {
      const log = existsSync(c.logFile) ? readFileSync(c.logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
      c.destroy();
      throw new Error(`${(e as Error).message}${log ? `\ncontainerd log tail:\n${log}` : ''}`);
    }
  }

  private prepareFiles(): void {
    const d = this.dir;
    for (const sub of ['run', 'varlib', 'root', 'state']) mkdirSync(join(d, sub));
    makeBinDir(this.binDir, ['loopback', ...(this.opts.referencePlugins ?? [])]); // containerd runs loopback for lo
    mkdirSync(this.confDir, { recursive: true });
    const name = String(this.opts.conflist.name);
    writeFileSync(join(this.confDir, `10-${name}.conflist`), JSON.stringify(this.opts.conflist, null, 2));
    const cri = '[plugins."io.containerd.grpc.v1.cri"';
    writeFileSync(join(d, 'config.toml'), [
      'version = 2',
      `root = ${toml(join(d, 'root'))}`,
      `state = ${toml(join(d, 'state'))}`,
      // /opt/containerd, and snapshotters and exporters the tests do not use
      'disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",',
      '  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]',
      '[grpc]',
      `  address = ${toml(this.socket)}`,
      `${cri}]`,
      `  sandbox_image = ${toml(this.opts.image.ref)}`,
      '  restrict_oom_score_adj = true # root here lacks CAP_SYS_RESOURCE',
      '  netns_mounts_under_state_dir = true',
      '  stream_server_port = "0"',
      `${cri}.containerd]`,
      '  snapshotter = "overlayfs"',
      '  default_runtime_name = "runc"',
      `${cri}.containerd.runtimes.runc]`,
      '  runtime_type = "io.containerd.runc.v2"',
      `${cri}.cni]`,
      `  bin_dir = ${toml(this.binDir)}`,
      `  conf_dir = ${toml(this.confDir)}`,
      '  max_conf_num = 1',
      '',
    ].join('\n'));
  }

  private startHolder(): void {
    const own = mountNsOf('self');
    const holder = detached(['unshare', '--mount', '--propagation', 'private', 'sleep', 'infinity'], 'ignore');
    this.holderPid = holder.pid!;
    const deadline = Date.now() + 5000;
    for (;;) {
      const ns = mountNsOf(this.holderPid);
      if (ns && ns !== own) {
        this.mntNs = ns;
        break;
      }
      if (Date.now() > deadline || !pidAlive(this.holderPid)) throw new Error('unshare did not make a mount namespace');
      sleepSync(5);
    }
    // The copied mount table holds every network namespace mounted on the host (other tests'
    // too): drop those copies, or they would keep namespaces alive that their owners delete.
    for (const mp of nsfsMounts(this.holderPid)) sh(['nsenter', '-t', String(this.holderPid), '-m', '--', 'umount', '--lazy', mp], { allowFail: true });
    for (const [from, to] of [['run', '/run'], ['varlib', '/var/lib']] as const) {
      sh(['nsenter', '-t', String(this.holderPid), '-m', '--', 'mount', '--bind', join(this.dir, from), to]);
    }
  }

  private async startDaemon(): Promise<void> {
    const log = openSync(this.logFile, 'a', 0o600);
    try {
      const child = detached(
        ['nsenter', '-t', String(this.holderPid), '-m', `--net=${join(NETNS_DIR, this.opts.nodeNs)}`, '--',
          'containerd', '--config', join(this.dir, 'config.toml')],
        log,
      );
      this.pid = child.pid!;
    } finally {
      closeSync(log);
    }
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const v = await this.cri.version();
        if (v.runtime_api_version) return;
      } catch (e) {
        if (!pidAlive(this.pid)) throw new Error('containerd exited during start-up');
        if (Date.now() > deadline) throw new Error(`containerd not answering on ${this.socket}: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** RunPodSandbox, with the sandbox's cgroup under this test's parent. */
  runPod(spec: Omit<SandboxSpec, 'cgroupParent'>): Promise<string> {
    return this.cri.runPodSandbox({ ...spec, cgroupParent: `/${this.opts.prefix}` });
  }

  status(id: string): Promise<SandboxStatus> {
    return this.cri.podSandboxStatus(id);
  }

  /** Network namespace mounts containerd holds (one per sandbox that has a network). */
  netnsMounts(): string[] {
    return this.pid === null || !pidAlive(this.pid) ? [] : nsfsMounts(this.pid);
  }

  /** Files left in the netns directory of the state dir. */
  netnsFiles(): string[] {
    const dir = join(this.dir, 'state', 'io.containerd.grpc.v1.cri', 'netns');
    return existsSync(dir) ? readdirSync(dir) : [];
  }

  /** libcni's cached results (one per attachment until its DEL succeeds). */
  cniCacheFiles(): string[] {
    const dir = join(this.dir, 'varlib', 'cni', 'results');
    return existsSync(dir) ? readdirSync(dir) : [];
  }

  /** Stops every process it started (containerd, shims, pause processes, the holder) by PID
   *  and removes cgroups and files. Synchronous, so it runs from any teardown. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.cri.close();
    if (this.pid !== null) stopPidSync(this.pid);
    if (this.mntNs) {
      const left = processesIn(this.mntNs).filter((p) => p !== this.holderPid);
      for (const p of left) stopPidSync(p, 0, 'SIGKILL');
    }
    // A sandbox whose shim was killed keeps running: its processes are found by cgroup.
    for (const p of processesInCgroups(cgroupDirs(this.opts.prefix))) stopPidSync(p, 0, 'SIGKILL');
    if (this.holderPid !== null) stopPidSync(this.holderPid, 1000);
    for (const d of cgroupDirs(this.opts.prefix)) sh(['rmdir', d], { allowFail: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function detached(argv: string[], out: number | 'ignore'): ChildProcess {
  const child = spawn(argv[0]!, argv.slice(1), {
    detached: true,
    stdio: ['ignore', out, out],
    env: { PATH: PLUGIN_PATH },
  });
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${argv[0]}`);
  return child;
}
