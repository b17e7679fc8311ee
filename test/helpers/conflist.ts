// A network configuration list run the way libcni (the runtimes' CNI library) runs it, for
// tests of testcni in a chain with other plugins:
// - ADD: plugins in order; each gets the list's name and cniVersion, the previous plugin's
//   result as prevResult, and runtimeConfig for the capabilities it declares; the last result
//   is cached per attachment;
// - CHECK: plugins in order, each with the cached result as prevResult (needs cniVersion >= 0.4.0
//   and no disableCheck);
// - DEL: plugins in reverse order, each with the cached result; the cache goes once all succeed.
// Plugins run inside the node's network namespace with CNI_* in the environment and the config on
// stdin, found by type in the CNI_PATH directories, like a runtime on that node.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, copyFileSync, chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NETNS_DIR, PLUGIN } from './netns.ts';

export const REFERENCE_CNI_DIR = '/usr/lib/cni';
type Json = Record<string, unknown>;

/**
 * A CNI bin dir as a runtime's: testcni (a copy of the bundle, or of `testcni` such as the single
 * executable, so a rebuild during the run changes nothing), the compiled BPF objects beside it
 * in bpf/ (as `testcni install` puts them), and the named reference plugins.
 */
export function makeBinDir(dir: string, referencePlugins: string[] = [], testcni: string = PLUGIN): string {
  mkdirSync(dir, { recursive: true });
  copyFileSync(testcni, join(dir, 'testcni'));
  const objects = join(dirname(PLUGIN), 'bpf');
  if (existsSync(objects)) {
    mkdirSync(join(dir, 'bpf'));
    for (const o of readdirSync(objects).filter((f) => f.endsWith('.o'))) copyFileSync(join(objects, o), join(dir, 'bpf', o));
  }
  chmodSync(join(dir, 'testcni'), 0o755);
  for (const p of referencePlugins) symlinkSync(join(REFERENCE_CNI_DIR, p), join(dir, p));
  return dir;
}

/** PATH for plugin processes: the tools, and the node binary the testcni bundle's #! asks for. */
export const PLUGIN_PATH = `${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`;

/** A single-plugin network config (as the e2e nodes make them) turned into a conflist. */
export function toConflist(config: Json, next: Json[] = []): Json {
  const { cniVersion, name, ...plugin } = config;
  return { cniVersion, name, plugins: [plugin, ...next] };
}

export interface Attachment {
  containerId: string;
  netns: string;
  ifName?: string;
  /** CNI_ARGS pairs */
  args?: Record<string, string>;
  /** runtime values per capability, e.g. { portMappings: [...] }, given to plugins that declare it */
  capabilityArgs?: Record<string, unknown>;
}

export interface PluginRun {
  command: string;
  type: string;
  code: number;
  stdout: string;
  stderr: string;
  json: Json | null;
}

export class ChainError extends Error {
  constructor(readonly run: PluginRun) {
    super(`${run.type} ${run.command} exited ${run.code}: ${run.stdout.trim() || '(no stdout)'} ${run.stderr.trim().slice(0, 800)}`);
  }
}

export interface ConflistRunnerOptions {
  /** network namespace (name under /var/run/netns) the plugins run in: the node */
  nodeNs: string;
  /** CNI_PATH: directories searched in order for each plugin type */
  pluginDirs: string[];
  /** where final ADD results are cached (libcni: /var/lib/cni/results) */
  cacheDir: string;
}

function parse(s: string): Json | null {
  try {
    return s.trim() ? JSON.parse(s) : null;
  } catch {
    return null;
  }
}

function atLeast(v: string, min: string): boolean {
  const [a, b] = [v, min].map((s) => s.split('.').map(Number));
  for (let i = 0; i < 3; i++) if (a![i]! !== b![i]!) return a![i]! > b![i]!;
  return true;
}

export class ConflistRunner {
  /** every plugin process run, in order, for assertions on who was called with what */
  readonly runs: PluginRun[] = [];

  constructor(readonly conflist: Json, private readonly opts: ConflistRunnerOptions) {}

  private get name(): string {
    return String(this.conflist.name);
  }

  private get version(): string {
    return String(this.conflist.cniVersion);
  }

  private get plugins(): Json[] {
    return this.conflist.plugins as Json[];
  }

  private cacheFile(a: Attachment): string {
    return join(this.opts.cacheDir, 'results', `${this.name}-${a.containerId}-${a.ifName ?? 'eth0'}`);
  }

  cachedResult(a: Attachment): Json | null {
    try {
      return (JSON.parse(readFileSync(this.cacheFile(a), 'utf8')) as { result: Json }).result;
    } catch {
      return null;
    }
  }

  /** The config one plugin gets (libcni's buildOneConfig). */
  pluginConfig(plugin: Json, prevResult: Json | null, a: Attachment): Json {
    const conf: Json = { ...plugin, name: this.name, cniVersion: this.version };
    if (prevResult) conf.prevResult = prevResult;
    const caps = (plugin.capabilities ?? {}) as Record<string, boolean>;
    const runtimeConfig: Json = {};
    for (const [cap, value] of Object.entries(a.capabilityArgs ?? {})) if (caps[cap]) runtimeConfig[cap] = value;
    if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
    return conf;
  }

  private find(type: string): string {
    for (const dir of this.opts.pluginDirs) {
      const p = join(dir, type);
      try {
        accessSync(p, constants.X_OK);
        return p;
      } catch { /* next dir */ }
    }
    throw new Error(`plugin ${type} not found in ${this.opts.pluginDirs.join(':')}`);
  }

  private exec(command: string, plugin: Json, conf: Json, a: Attachment): PluginRun {
    const type = String(plugin.type);
    const args = Object.entries(a.args ?? {}).map(([k, v]) => `${k}=${v}`).join(';');
    const r = spawnSync('nsenter', [`--net=${join(NETNS_DIR, this.opts.nodeNs)}`, '--', this.find(type)], {
      input: JSON.stringify(conf),
      encoding: 'utf8',
      env: {
        PATH: PLUGIN_PATH,
        CNI_COMMAND: command,
        CNI_CONTAINERID: a.containerId,
        CNI_NETNS: a.netns,
        CNI_IFNAME: a.ifName ?? 'eth0',
        CNI_ARGS: args,
        CNI_PATH: this.opts.pluginDirs.join(':'),
      },
    });
    const run = { command, type, code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '', json: parse(r.stdout ?? '') };
    this.runs.push(run);
    if (run.code !== 0) throw new ChainError(run);
    return run;
  }

  /** ADD through the whole list; returns (and caches) the last plugin's result. */
  /** The error of an ADD expected to fail, or null when it succeeded. */
  addFailure(a: Attachment): ChainError | null {
    try {
      this.add(a);
      return null;
    } catch (e) {
      if (!(e instanceof ChainError)) throw e;
      return e;
    }
  }

  add(a: Attachment): Json {
    let prev: Json | null = null;
    for (const plugin of this.plugins) {
      const run = this.exec('ADD', plugin, this.pluginConfig(plugin, prev, a), a);
      if (!run.json) throw new Error(`${run.type} ADD printed no result: ${run.stderr.slice(0, 400)}`);
      prev = run.json;
    }
    mkdirSync(dirname(this.cacheFile(a)), { recursive: true });
    writeFileSync(this.cacheFile(a), JSON.stringify({ kind: 'cniCacheV1', containerId: a.containerId, ifName: a.ifName ?? 'eth0', networkName: this.name, result: prev }), { mode: 0o600 });
    return prev!;
  }

  /** CHECK through the whole list with the cached result. */
  check(a: Attachment): void {
    if (!atLeast(this.version, '0.4.0')) throw new Error(`configuration version ${this.version} does not support CHECK`);
    if (this.conflist.disableCheck === true) return;
    const cached = this.cachedResult(a);
    if (!cached) throw new Error(`no cached result for ${a.containerId}: cannot CHECK`);
    for (const plugin of this.plugins) this.exec('CHECK', plugin, this.pluginConfig(plugin, cached, a), a);
  }

  /**
   * CHECK of every plugin with the cached result, not stopping at a failure (libcni stops at the
   * first): for telling which plugins of a chain agree when one of them cannot.
   */
  checkEach(a: Attachment): PluginRun[] {
    const cached = this.cachedResult(a);
    if (!cached) throw new Error(`no cached result for ${a.containerId}: cannot CHECK`);
    return this.plugins.map((plugin) => {
      try {
        return this.exec('CHECK', plugin, this.pluginConfig(plugin, cached, a), a);
      } catch (e) {
        if (e instanceof ChainError) return e.run;
        throw e;
      }
    });
  }

  /** DEL through the list in reverse, each plugin with the cached result; then drops the cache. */
  del(a: Attachment): void {
    const cached = atLeast(this.version, '0.4.0') ? this.cachedResult(a) : null;
    for (const plugin of [...this.plugins].reverse()) this.exec('DEL', plugin, this.pluginConfig(plugin, cached, a), a);
    rmSync(this.cacheFile(a), { force: true });
  }
}
