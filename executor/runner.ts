// The only module that starts processes: argv arrays, no shell, an explicit environment,
// a timeout, and failures returned as data rather than thrown.
//
// Built on node:child_process rather than execa: bundled execa adds ~25-33 ms of module
// evaluation to every plugin start, more than a whole reference-plugin ADD
// (bench/runner-startup.mjs measures it). The contract is the one execa's
// `{reject: false, shell: false, extendEnv: false, timeout}` gives.
import { spawn, spawnSync } from 'node:child_process';

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
}

export interface RunResult {
  argv: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

export interface Runner {
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
  /** processes started so far (for the benchmark's spawn count) */
  readonly spawned: number;
}

// Tools get a fixed, minimal environment: nothing from the runtime's CNI_* variables leaks in.
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
export const DEFAULT_TIMEOUT_MS = 30_000;

const now = () => Number(process.hrtime.bigint()) / 1e6; // performance.now() would load perf_hooks

/**
 * The plugin's runner: one command at a time, synchronously. A CNI call runs its steps in
 * order anyway, and Node's first asynchronous spawn costs ~6 ms more than spawnSync (stream
 * and pipe set-up), on every plugin start.
 */
export class SyncProcessRunner implements Runner {
  spawned = 0;

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const [file, ...args] = argv;
    if (!file || !file.startsWith('/')) throw new Error(`runner needs an absolute program path, got ${JSON.stringify(file)}`);
    this.spawned++;
    const started = now();
    const r = spawnSync(file, args, {
      shell: false,
      env: ENV,
      input: opts.input ?? '',
      timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      maxBuffer: 64 << 20,
      encoding: 'utf8',
    });
    const err = r.error as NodeJS.ErrnoException | undefined;
    const timedOut = err?.code === 'ETIMEDOUT';
    return {
      argv,
      exitCode: r.status ?? (timedOut ? 124 : err ? 127 : 128 + 9),
      stdout: r.stdout ?? '',
      stderr: (r.stderr ?? '') || (timedOut ? 'timed out' : err ? err.message : ''),
      ms: Math.round((now() - started) * 100) / 100,
      timedOut,
    };
  }
}

/** The agent's runner: asynchronous, so a slow command never stalls its API. */
export class ProcessRunner implements Runner {
  spawned = 0;

  run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const [file, ...args] = argv;
    if (!file || !file.startsWith('/')) throw new Error(`runner needs an absolute program path, got ${JSON.stringify(file)}`);
    this.spawned++;
    const started = now();
    return new Promise((resolve) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      let spawnError: Error | null = null;
      const child = spawn(file, args, { shell: false, env: ENV, stdio: ['pipe', 'pipe', 'pipe'] });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.stdin.on('error', () => { /* the child exited before reading its input: its exit status says why */ });
      child.on('error', (e) => { spawnError = e; });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const stderr = Buffer.concat(err).toString('utf8');
        resolve({
          argv,
          exitCode: code ?? (timedOut ? 124 : spawnError ? 127 : 128 + (signal ? 9 : 0)),
          stdout: Buffer.concat(out).toString('utf8'),
          // A program that could not start has no stderr of its own: report why it did not start.
          stderr: stderr || (spawnError ? String((spawnError as Error).message) : timedOut ? 'timed out' : ''),
          ms: Math.round((now() - started) * 100) / 100,
          timedOut,
        });
      });
      child.stdin.end(opts.input ?? '');
    });
  }
}

export function tail(text: string, max = 400): string {
  const t = text.trim();
  return t.length <= max ? t : '…' + t.slice(t.length - max);
}

/** A failed tool's stderr as a step reports it: its tail, and first the verifier's verdict when
 *  libbpf (bpftool) printed a refused program's load log, whose end is statistics after the one
 *  line saying why. */
export function failureText(stderr: string): string {
  const log = /-- BEGIN PROG LOAD LOG --\n([\s\S]*?)-- END PROG LOAD LOG --/.exec(stderr)?.[1];
  const lines = (log ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  const stats = lines.findIndex((l) => /^processed \d+ insns/.test(l));
  const verdict = stats > 0 ? lines[stats - 1] : lines[lines.length - 1];
  return verdict ? `verifier: ${verdict}; ${tail(stderr)}` : tail(stderr);
}

export interface DaemonOptions {
  /** file that receives the daemon's stdout and stderr (appended, 0600) */
  logFile: string;
  env?: Record<string, string>;
  /** called once when the process exits (a supervisor restarts it); keeps nothing else alive */
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
}

/**
 * Starts a long-running process (etcd, an agent, BIRD) detached from the caller, with its
 * output in a log file and nothing inherited on stdout: a daemon must never write into the
 * CNI result stream. Returns its PID; stopping it is the caller's business.
 */
export async function startDaemon(argv: string[], opts: DaemonOptions): Promise<number> {
  const [file, ...args] = argv;
  if (!file || !file.startsWith('/')) throw new Error(`startDaemon needs an absolute program path, got ${JSON.stringify(file)}`);
  const { openSync, closeSync } = await import('node:fs');
  const fd = openSync(opts.logFile, 'a', 0o600);
  try {
    const child = spawn(file, args, { shell: false, detached: true, stdio: ['ignore', fd, fd], env: opts.env ?? ENV });
    const pid = child.pid;
    if (pid === undefined) {
      const err = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw new Error(`cannot start ${file}: ${err.message}`);
    }
    if (opts.onExit) child.once('exit', opts.onExit);
    child.unref();
    return pid;
  } finally {
    closeSync(fd);
  }
}
