// Runs shell scripts inside a software-emulated VM (qemu-system-x86_64, TCG) with Debian's
// kernel, for datapaths this machine's kernel lacks (ipip, ipvlan). The guest has no network
// device: everything a script builds stays inside the VM. One boot runs several jobs in turn,
// each in a fresh network namespace (its "node"), so rendered plans run there unchanged:
// `/usr/sbin/ip`, `/usr/bin/nsenter --net=PATH`, `/usr/sbin/sysctl`, `netns "$$"` all work.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VM_MODULES, packCpio, vmImage, vmImageSkipReason, vmToolSkipReason, type VmImage } from './vm-image.ts';

export { VM_MODULES, vmImage, vmToolSkipReason, type VmImage };

export interface VmJob {
  /** [A-Za-z0-9_-]+, unique within one boot */
  name: string;
  /** run by /bin/sh (dash, as on Debian) in a fresh netns, from a directory holding `files`; stdin is empty */
  script: string;
  /** more files next to script.sh, e.g. one rendered plan per node */
  files?: Record<string, string>;
  /** killed (SIGKILL) after this long; default 60 s */
  timeoutMs?: number;
}

export interface VmJobResult {
  name: string;
  /** null when the job never finished (the VM died or the whole boot timed out) */
  exitCode: number | null;
  /** 137 from the in-VM time limit's SIGKILL */
  timedOut: boolean;
  /** stdout and stderr together, as the serial console showed them */
  output: string;
  /** wall-clock time between its begin and end markers, seen from the host */
  ms: number;
}

export interface VmRunOptions {
  /** modules loaded before the first job; default all of VM_MODULES */
  modules?: readonly string[];
  /** the whole boot, including every job; default 90 s + the jobs' limits */
  timeoutMs?: number;
  memoryMb?: number;
  cpus?: number;
}

export interface VmRun {
  jobs: VmJobResult[];
  kernelVersion: string;
  /** qemu start until the guest's init reported ready (modules loaded) */
  bootMs: number;
  /** qemu start until it exited */
  totalMs: number;
  /** guest uptime (s) when it was ready */
  guestReadyS: number | null;
  /** modules that failed to load */
  moduleFailures: string[];
  /** everything the console printed, markers included (for diagnostics) */
  console: string;
  /** how qemu ended: "exited N" (the guest powered off: 0) or "killed (SIGNAL)" */
  qemuExit: string;
  qemuPid: number;
}

const DEFAULT_JOB_MS = 60_000;
const BOOT_ALLOWANCE_MS = 90_000;
const NAME = /^[A-Za-z0-9_-]+$/;

/** Why VM tests cannot run here (clear text), or null when they can. */
export function vmSkipReason(): string | null {
  return vmImageSkipReason();
}

/** The boot's initramfs: the cached base archive with this boot's jobs appended as a second one. */
function jobArchive(work: string, image: VmImage, jobs: VmJob[], token: string, modules: readonly string[]): string {
  const stage = join(work, 'stage');
  mkdirSync(join(stage, 'testcni', 'jobs'), { recursive: true });
  writeFileSync(join(stage, 'testcni', 'token'), `${token}\n`);
  writeFileSync(join(stage, 'testcni', 'modules'), modules.join('\n') + '\n');
  jobs.forEach((job, i) => {
    // Ordered by an index prefix; the init runs jobs in glob (name) order.
    const dir = join(stage, 'testcni', 'jobs', `${String(i).padStart(3, '0')}-${job.name}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'script.sh'), job.script, { mode: 0o755 });
    writeFileSync(join(dir, 'limit'), `${Math.ceil((job.timeoutMs ?? DEFAULT_JOB_MS) / 1000)}\n`);
    for (const [name, text] of Object.entries(job.files ?? {})) {
      if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name) || name === 'script.sh' || name === 'limit') throw new Error(`bad job file name ${name}`);
      writeFileSync(join(dir, name), text, { mode: 0o755 });
    }
  });
  const extra = join(work, 'jobs.cpio');
  packCpio(stage, extra);
  const initrd = join(work, 'initrd.cpio');
  copyFileSync(image.initramfs, initrd);
  appendFileSync(initrd, readFileSync(extra)); // the kernel unpacks concatenated archives in order
  return initrd;
}

function qemuArgv(image: VmImage, initrd: string, opts: VmRunOptions): string[] {
  return [
    'qemu-system-x86_64',
    '-machine', 'pc,accel=tcg', '-m', String(opts.memoryMb ?? 256), '-smp', String(opts.cpus ?? 1),
    '-nodefaults', '-no-user-config', '-nic', 'none',
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
    '-kernel', image.kernel, '-initrd', initrd,
    // norandmaps: TCG keeps translated code by address, so shared libraries mapped at the same
    // place in every process are translated once (a dynamic exec ~7x faster). cryptomgr.notests:
    // the crypto self-tests take ~1.3 s of boot under TCG and test nothing used here.
    '-append', 'console=ttyS0 quiet loglevel=1 panic=-1 nokaslr mitigations=off norandmaps cryptomgr.notests',
  ];
}

/**
 * Boots the VM once and runs the jobs in order. Resolves when the guest has powered off, or
 * when the time limit killed qemu (then unfinished jobs have exitCode null). qemu is always
 * killed and the boot's temp files removed.
 */
export async function runJobsInVm(jobs: VmJob[], opts: VmRunOptions = {}): Promise<VmRun> {
  const reason = vmSkipReason();
  if (reason) throw new Error(reason);
  const seen = new Set<string>();
  for (const j of jobs) {
    if (!NAME.test(j.name) || seen.has(j.name)) throw new Error(`job name ${JSON.stringify(j.name)} is not a unique [A-Za-z0-9_-]+`);
    seen.add(j.name);
  }
  const image = vmImage();
  const token = randomBytes(6).toString('hex');
  const modules = opts.modules ?? VM_MODULES;
  const work = mkdtempSync(join(tmpdir(), 'testcni-vmrun-'));
  const limit = opts.timeoutMs ?? BOOT_ALLOWANCE_MS + jobs.reduce((s, j) => s + (j.timeoutMs ?? DEFAULT_JOB_MS), 0);
  try {
    const initrd = jobArchive(work, image, jobs, token, modules);
    return await boot(image, initrd, token, jobs, opts, limit);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function boot(image: VmImage, initrd: string, token: string, jobs: VmJob[], opts: VmRunOptions, limit: number): Promise<VmRun> {
  const argv = qemuArgv(image, initrd, opts);
  const started = Date.now();
  const marker = new RegExp(`@@${token} (\\w+)(?: (.*))?$`);
  const results = new Map<string, VmJobResult>();
  const moduleFailures: string[] = [];
  let consoleText = '';
  let pending = '';
  let bootMs = -1;
  let guestReadyS: number | null = null;
  let current: { name: string; lines: string[]; at: number } | null = null;

  const onLine = (raw: string): void => {
    const line = raw.replace(/\r/g, '');
    const m = marker.exec(line);
    if (!m) {
      current?.lines.push(line);
      return;
    }
    const before = line.slice(0, m.index); // output without a final newline, then the marker
    if (before) current?.lines.push(before);
    const [, what, rest = ''] = m;
    if (what === 'ready') {
      bootMs = Date.now() - started;
      guestReadyS = Number(rest.split(' ')[0]);
    } else if (what === 'modprobe-failed') {
      moduleFailures.push(rest);
    } else if (what === 'begin') {
      current = { name: rest.replace(/^\d+-/, ''), lines: [], at: Date.now() };
    } else if (what === 'end' && current) {
      const code = Number(rest.split(' ').at(-1));
      results.set(current.name, {
        name: current.name, exitCode: code, timedOut: code === 137, output: current.lines.join('\n'), ms: Date.now() - current.at,
      });
      current = null;
    }
  };

  return new Promise<VmRun>((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const timer = setTimeout(kill, limit);
    // A test process that dies must not leave qemu behind.
    process.once('exit', kill);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      consoleText += chunk;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      lines.forEach(onLine);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (e) => {
      clearTimeout(timer);
      process.removeListener('exit', kill);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      process.removeListener('exit', kill);
      if (pending) onLine(pending);
      if (current) {
        const c: { name: string; lines: string[]; at: number } = current;
        results.set(c.name, { name: c.name, exitCode: null, timedOut: false, output: c.lines.join('\n'), ms: Date.now() - c.at });
      }
      if (bootMs < 0 && stderr.trim()) {
        reject(new Error(`qemu exited (${signal ?? code}) before the guest was ready: ${stderr.trim().slice(-500)}`));
        return;
      }
      resolve({
        jobs: jobs.map((j) => results.get(j.name) ?? { name: j.name, exitCode: null, timedOut: false, output: '', ms: 0 }),
        kernelVersion: image.kernelVersion,
        bootMs,
        totalMs: Date.now() - started,
        guestReadyS,
        moduleFailures,
        console: consoleText.replace(/\r/g, '') + (stderr ? `\n[qemu stderr] ${stderr}` : ''),
        qemuExit: signal ? `killed (${signal})` : `exited ${code}`,
        qemuPid: child.pid ?? -1,
      });
    });
  });
}

/** One script in its own boot; `timeoutMs` limits the script (the boot gets 90 s more). */
export async function runInVm(
  script: string,
  opts: Omit<VmRunOptions, 'timeoutMs'> & Pick<VmJob, 'files' | 'timeoutMs'> = {},
): Promise<{ exitCode: number | null; output: string }> {
  const { files, timeoutMs, ...runOpts } = opts;
  const run = await runJobsInVm([{ name: 'script', script, files, timeoutMs }], runOpts);
  const job = run.jobs[0]!;
  return { exitCode: job.exitCode, output: job.output };
}
