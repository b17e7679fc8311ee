// What a benchmark run makes and how it calls the plugin: network namespaces and a temp dir it
// owns (removed at exit, on a signal or an error), pod namespaces, CNI calls exactly as a
// runtime makes them, and ADD/DEL latency with processes per call for several modes on one node.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { PLUGIN, TOOL_PATH, which, liveChildren, timedRun, summary, execsByPid, spawnedFromLog } from './lib.mjs';

const IP = which('ip');
const NSENTER = which('nsenter');
const STRACE = which('strace');

export const nsPath = (name) => `/var/run/netns/${name}`;

/** Namespaces, a temp dir holding a copy of the plugin bundle, and servers this run owns. */
export class Scratch {
  constructor(tag) {
    this.tag = tag;
    // tag + "-" + 4 base36 characters: the dash keeps it apart from tests' uniquePrefix names.
    this.prefix = `tc${tag.slice(0, 1)}-${(process.pid % 1296).toString(36).padStart(2, '0')}${Math.floor(Math.random() * 1296).toString(36).padStart(2, '0')}`;
    this.netns = new Set();
    this.servers = [];
    this.dir = mkdtempSync(join(tmpdir(), `${this.prefix}-`));
    // A copy: a rebuild of dist/ during the run (npm test rebuilds it) cannot change what is measured.
    this.pluginFile = join(this.dir, 'testcni.cjs');
    copyFileSync(PLUGIN, this.pluginFile);
    this.podSeq = 0;
    this.cleanedUp = false;
    process.on('exit', () => this.cleanup());
    for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
      process.on(sig, () => {
        process.stderr.write(`${tag}: ${sig}: cleaning up\n`);
        this.cleanup();
        process.exit(code);
      });
    }
  }

  ip(args, input) {
    const r = spawnSync(IP, args, { input, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  createNetns(names) {
    for (const n of names) this.netns.add(n);
    this.ip(['-batch', '-'], names.map((n) => `netns add ${n}\n`).join(''));
  }

  deleteNetns(names) {
    if (names.length === 0) return;
    spawnSync(IP, ['-force', '-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join(''), stdio: ['pipe', 'ignore', 'ignore'] });
    for (const n of names) this.netns.delete(n);
  }

  /** Empty pod namespaces, as a runtime makes them before ADD. */
  makePods(count) {
    const pods = Array.from({ length: count }, () => {
      const name = `${this.prefix}p${this.podSeq++}`;
      return { name, path: nsPath(name), containerId: name, result: null };
    });
    this.createNetns(pods.map((p) => p.name));
    return pods;
  }

  cleanup() {
    if (this.cleanedUp) return;
    this.cleanedUp = true;
    for (const child of [...liveChildren, ...this.servers]) {
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    this.deleteNetns([...this.netns]);
    rmSync(this.dir, { recursive: true, force: true });
    const left = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(this.prefix));
    if (left.length > 0) process.stderr.write(`${this.tag}: could not remove netns: ${left.join(', ')}\n`);
  }

  /** One CNI call as a runtime makes it: the plugin in the node's netns, CNI_* env, config on stdin. */
  async cni(node, config, verb, pod, { wrap = [], env = {} } = {}) {
    const argv = [...wrap, NSENTER, `--net=${nsPath(node.ns)}`, '--', process.execPath, this.pluginFile];
    const input = { ...config, ...(verb === 'DEL' && pod.result ? { prevResult: pod.result } : {}) };
    const r = await timedRun(argv, {
      env: { PATH: TOOL_PATH, CNI_COMMAND: verb, CNI_CONTAINERID: pod.containerId, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...env },
      input: JSON.stringify(input),
    });
    if (r.code !== 0) throw new Error(`${config.mode} ${verb} ${pod.containerId} exited ${r.code}: ${(r.stdout + r.stderr).trim().slice(-600)}`);
    if (verb === 'ADD') pod.result = JSON.parse(r.stdout);
    return r;
  }

  /**
   * ADD/DEL latency per mode on one node (modes interleaved, after a warm-up), then processes per
   * call: the plugin's own count (its debug log) and, with strace, what it exec'd.
   */
  async modeLatency(node, modes, { iterations, warmup = 3, countRuns = 3 }) {
    for (const [, config] of modes) {
      for (const pod of this.makePods(warmup)) {
        await this.cni(node, config, 'ADD', pod);
        await this.cni(node, config, 'DEL', pod);
        this.deleteNetns([pod.name]);
      }
    }
    const ms = Object.fromEntries(modes.map(([m]) => [m, { ADD: [], DEL: [] }]));
    for (let i = 0; i < iterations; i++) {
      const order = i % 2 === 0 ? modes : [...modes].reverse();
      for (const [m, config] of order) {
        const [pod] = this.makePods(1);
        ms[m].ADD.push((await this.cni(node, config, 'ADD', pod)).ms);
        ms[m].DEL.push((await this.cni(node, config, 'DEL', pod)).ms);
        this.deleteNetns([pod.name]);
      }
    }
    const procs = {};
    for (const [m, config] of modes) {
      procs[m] = { ADD: [], DEL: [], straceADD: [], straceDEL: [] };
      for (let i = 0; i < countRuns; i++) {
        const [pod] = this.makePods(1);
        for (const verb of ['ADD', 'DEL']) {
          const traceFile = join(this.dir, `strace-${m}-${verb}-${i}.log`);
          const wrap = STRACE ? [STRACE, '-f', '-e', 'trace=execve', '-qq', '-o', traceFile] : [];
          const r = await this.cni(node, { ...config, logLevel: 'debug' }, verb, pod, { wrap });
          procs[m][verb].push(spawnedFromLog(r.stderr));
          if (STRACE) {
            const byPid = execsByPid(readFileSync(traceFile, 'utf8'));
            const root = [...byPid.keys()][0]; // nsenter, which execs node: the plugin itself
            procs[m][`strace${verb}`].push([...byPid.entries()].filter(([pid]) => pid !== root).map(([, chain]) => chain.join('→')));
          }
        }
        this.deleteNetns([pod.name]);
      }
    }
    return Object.fromEntries(modes.map(([m]) => [m, { ADD: summary(ms[m].ADD), DEL: summary(ms[m].DEL), processes: procs[m] }]));
  }
}
