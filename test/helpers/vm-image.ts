// The boot files of the emulated test VM: Debian's kernel (unpacked to an ELF vmlinux when it
// supports PVH, which saves the BIOS and an in-guest xz decompression, ~5 s under TCG) and an
// initramfs with busybox-static, dash as /bin/sh, iproute2's ip/tc/bridge, util-linux nsenter,
// procps sysctl, iputils ping (and BIRD's bird and birdc when the host has them), their shared
// libraries, and the kernel modules the ipip and ipvlan tests need. Built once and cached under
// the temp dir, keyed by every input file's path, size and mtime (this file's included).
import { spawnSync } from 'node:child_process';
import {
  accessSync, constants, chmodSync, copyFileSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync,
  realpathSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync, lstatSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT } from './netns.ts';

/** Modules packed into the image (with their dependencies from modules.dep). */
export const VM_MODULES = ['veth', 'bridge', 'ipip', 'ipvlan', 'macvlan', 'dummy'] as const;

/**
 * Host programs copied in with their libraries; they shadow busybox's applets of the same name.
 * dash is /bin/sh, as on Debian: Debian's busybox ash runs its own applets before searching
 * PATH, so under it a bare `ip` would be busybox's small ip, not iproute2's.
 */
const TOOLS: Record<string, string> = {
  dash: 'dash', ip: 'iproute2', tc: 'iproute2', bridge: 'iproute2', nsenter: 'util-linux', sysctl: 'procps', ping: 'iputils-ping',
};
/** Copied in too when the host has them (tests that need one skip without it). */
const OPTIONAL_TOOLS: Record<string, string> = { bird: 'bird2', birdc: 'bird2' };
const BUSYBOX = '/bin/busybox';
const INIT_SCRIPT = join(ROOT, 'scripts', 'vm-init.sh');
/** This builder is an input too: a change to the layout below makes a new image. */
const BUILDER = fileURLToPath(import.meta.url);
const BIN_DIRS = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export interface VmImage {
  kernelVersion: string;
  /** what qemu's -kernel gets: an ELF vmlinux (PVH entry) or the bzImage */
  kernel: string;
  initramfs: string;
  dir: string;
}

function which(name: string): string | null {
  for (const d of BIN_DIRS) if (existsSync(join(d, name))) return join(d, name);
  return null;
}

function versionCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The newest kernel with both an image in /boot and modules under /lib/modules. */
export function findKernel(): { version: string; image: string; modulesDir: string } | null {
  if (!existsSync('/lib/modules')) return null;
  const versions = readdirSync('/lib/modules')
    .filter((v) => existsSync(`/boot/vmlinuz-${v}`) && existsSync(`/lib/modules/${v}/modules.dep`))
    .sort(versionCompare);
  const v = versions.at(-1);
  return v ? { version: v, image: `/boot/vmlinuz-${v}`, modulesDir: `/lib/modules/${v}` } : null;
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

function isStaticElf(path: string): boolean {
  const r = spawnSync('ldd', [path], { encoding: 'utf8' });
  return r.status !== 0 || /not a dynamic executable|statically linked/.test(r.stdout + r.stderr);
}

/** Why an optional program (bird, birdc) is not in the VM, or null when it is. */
export function vmToolSkipReason(name: string): string | null {
  const pkg = OPTIONAL_TOOLS[name];
  if (!pkg) throw new Error(`${name} is not an optional VM tool`);
  return which(name) ? null : `needs ${name} on the host to copy into the VM (Debian package ${pkg}; scripts/setup.sh installs it)`;
}

/** Why the VM cannot be built or booted here, or null when it can. */
export function vmImageSkipReason(): string | null {
  if (!which('qemu-system-x86_64')) return 'needs qemu-system-x86_64 (Debian package qemu-system-x86; scripts/setup.sh installs it)';
  const kernel = findKernel();
  if (!kernel) return 'needs a kernel image and its modules (Debian package linux-image-amd64; scripts/setup.sh installs it)';
  if (!readable(kernel.image)) return `cannot read ${kernel.image} (run as root)`;
  if (!existsSync(BUSYBOX) || !isStaticElf(BUSYBOX)) return 'needs a static busybox at /bin/busybox (Debian package busybox-static; scripts/setup.sh installs it)';
  if (!which('cpio')) return 'needs cpio to pack the initramfs (Debian package cpio; scripts/setup.sh installs it)';
  for (const [tool, pkg] of Object.entries(TOOLS)) {
    if (!which(tool)) return `needs ${tool} to copy into the VM (Debian package ${pkg}; scripts/setup.sh installs it)`;
  }
  return null;
}

/** Shared libraries (and the ELF interpreter) a dynamic program loads, as ldd resolves them. */
function sharedLibraries(path: string): string[] {
  const r = spawnSync('ldd', [path], { encoding: 'utf8' });
  if (r.status !== 0) {
    // A static program has none; any other failure must not yield an image without libraries.
    if (/not a dynamic executable/.test(`${r.stdout}${r.stderr}`)) return [];
    throw new Error(`ldd ${path} failed: ${r.error?.message ?? r.stderr}`);
  }
  const libs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

/** modules.dep as module path -> its dependencies (paths relative to the modules dir). */
function readModulesDep(modulesDir: string): Map<string, string[]> {
  const dep = new Map<string, string[]>();
  for (const line of readFileSync(join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const [mod, deps] = line.split(':');
    if (mod && deps !== undefined) dep.set(mod, deps.trim().split(/\s+/).filter(Boolean));
  }
  return dep;
}

function moduleName(path: string): string {
  return path.split('/').at(-1)!.replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_');
}

/** The module files for `names` and everything they depend on. */
function moduleClosure(dep: Map<string, string[]>, names: readonly string[]): string[] {
  const byName = new Map([...dep.keys()].map((p) => [moduleName(p), p]));
  const out = new Set<string>();
  for (const name of names) {
    const p = byName.get(name);
    if (!p) throw new Error(`kernel module ${name} is not in modules.dep`);
    out.add(p);
    for (const d of dep.get(p) ?? []) out.add(d);
  }
  return [...out].sort();
}

interface Inputs {
  kernel: { version: string; image: string; modulesDir: string };
  modules: string[];
  tools: Map<string, string>;
  libraries: string[];
}

function gatherInputs(): Inputs {
  const kernel = findKernel();
  if (!kernel) throw new Error('no kernel image with modules found');
  const modules = moduleClosure(readModulesDep(kernel.modulesDir), VM_MODULES);
  const tools = new Map<string, string>();
  for (const t of Object.keys(TOOLS)) tools.set(t, realpathSync(which(t)!));
  for (const t of Object.keys(OPTIONAL_TOOLS)) if (which(t)) tools.set(t, realpathSync(which(t)!));
  const libraries = [...new Set([...tools.values()].flatMap(sharedLibraries))].sort();
  return { kernel, modules, tools, libraries };
}

function cacheKey(inp: Inputs): string {
  const files = [
    BUILDER, inp.kernel.image, join(inp.kernel.modulesDir, 'modules.dep'), BUSYBOX, INIT_SCRIPT,
    ...inp.modules.map((m) => join(inp.kernel.modulesDir, m)), ...inp.tools.values(), ...inp.libraries,
  ];
  const h = createHash('sha256').update(JSON.stringify({ modules: VM_MODULES, tools: [...inp.tools.keys()] }));
  for (const f of files) {
    const s = statSync(f);
    h.update(`${f}\0${s.size}\0${s.mtimeMs}\n`);
  }
  return h.digest('hex').slice(0, 16);
}

function run(argv: string[], opts: { input?: Buffer; stdout?: number; cwd?: string } = {}): void {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    input: opts.input, cwd: opts.cwd, stdio: ['pipe', opts.stdout ?? 'pipe', 'pipe'], maxBuffer: 64 << 20,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr?.toString().trim()}`);
}

/**
 * An uncompressed vmlinux for qemu's PVH entry, or null when the kernel lacks PVH or is not
 * xz-compressed (Debian's is) or xz is missing; qemu then boots the bzImage, only slower.
 */
function unpackVmlinux(image: string, version: string, out: string): string | null {
  const config = `/boot/config-${version}`;
  if (!existsSync(config) || !/^CONFIG_PVH=y$/m.test(readFileSync(config, 'utf8')) || !which('xz')) return null;
  const bz = readFileSync(image);
  const at = bz.indexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])); // xz stream magic
  if (at < 0) return null;
  const fd = openSync(out, 'w');
  try {
    run(['xz', '-dc', '--single-stream'], { input: bz.subarray(at), stdout: fd });
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
  const head = readFileSync(out).subarray(0, 4);
  return head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])) ? out : null;
}

function put(stage: string, path: string, from: string): void {
  const dest = join(stage, path);
  mkdirSync(dirname(dest), { recursive: true });
  if (existsSync(dest) || isLink(dest)) unlinkSync(dest);
  copyFileSync(from, dest);
  chmodSync(dest, statSync(from).mode & 0o7777);
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function link(stage: string, path: string, target: string): void {
  const dest = join(stage, path);
  mkdirSync(dirname(dest), { recursive: true });
  if (existsSync(dest) || isLink(dest)) unlinkSync(dest);
  symlinkSync(target, dest);
}

function stageTree(stage: string, inp: Inputs): void {
  for (const d of ['proc', 'sys', 'dev', 'run', 'tmp', 'etc', 'testcni', 'usr/bin', 'usr/sbin', 'sbin']) {
    mkdirSync(join(stage, d), { recursive: true });
  }
  link(stage, 'var/run', '../run');
  put(stage, 'bin/busybox', BUSYBOX);
  const applets = spawnSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const a of applets) if (a !== 'bin/busybox') link(stage, a, '/bin/busybox');
  // The real tools at their own paths, reachable from every bin dir as the rendered plans
  // name them (e.g. /usr/sbin/ip, /usr/bin/nsenter), shadowing busybox's smaller applets.
  for (const [name, real] of inp.tools) {
    put(stage, real, real);
    for (const d of BIN_DIRS) if (join(d, name) !== real) link(stage, join(d, name), real);
  }
  link(stage, 'bin/sh', inp.tools.get('dash')!);
  for (const lib of inp.libraries) put(stage, lib, lib);
  const { modulesDir, version } = inp.kernel;
  for (const m of inp.modules) put(stage, join('lib/modules', version, m), join(modulesDir, m));
  // A modules.dep (and alias list, for the kernel's own module requests) of just these modules.
  const dep = readModulesDep(modulesDir);
  const depLines = inp.modules.map((m) => `${m}: ${(dep.get(m) ?? []).join(' ')}`.trimEnd());
  writeFileSync(join(stage, 'lib/modules', version, 'modules.dep'), depLines.join('\n') + '\n');
  const names = new Set(inp.modules.map(moduleName));
  const aliasFile = join(modulesDir, 'modules.alias');
  const aliases = existsSync(aliasFile)
    ? readFileSync(aliasFile, 'utf8').split('\n').filter((l) => names.has(l.split(/\s+/)[2] ?? ''))
    : [];
  writeFileSync(join(stage, 'lib/modules', version, 'modules.alias'), aliases.join('\n') + '\n');
  writeFileSync(join(stage, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  writeFileSync(join(stage, 'etc/group'), 'root:x:0:\n');
  put(stage, 'init', INIT_SCRIPT);
  chmodSync(join(stage, 'init'), 0o755);
}

/** Every path under dir, relative, parents first (what cpio -o reads). */
function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      out.push(relative(dir, p));
      if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/** Packs a directory into a newc cpio archive (owned by root), with Debian's cpio. */
export function packCpio(dir: string, out: string): void {
  const fd = openSync(out, 'w');
  try {
    run(['cpio', '-o', '-H', 'newc', '-R', '0:0', '--quiet'], {
      cwd: dir, input: Buffer.from(listTree(dir).join('\n') + '\n'), stdout: fd,
    });
  } finally {
    closeSync(fd);
  }
}

const STALE_MS = 24 * 3600_000;

/**
 * Images of other inputs (~75 MB each) unused for a day, and builds abandoned by dead
 * processes. Recent ones stay: another checkout with other inputs may be using its own.
 */
function pruneOthers(base: string, keep: string): void {
  for (const name of readdirSync(base)) {
    const p = join(base, name);
    const pid = /\.tmp-(\d+)$/.exec(name)?.[1];
    const stale = pid ? !existsSync(`/proc/${pid}`) : Date.now() - statSync(p).mtimeMs > STALE_MS;
    if (p !== keep && stale) rmSync(p, { recursive: true, force: true });
  }
}

let memo: VmImage | null = null;

/** Builds the image, or returns the cached one for the same inputs. */
export function vmImage(): VmImage {
  if (memo) return memo;
  const inp = gatherInputs();
  const base = join(tmpdir(), 'testcni-vm');
  const dir = join(base, `${inp.kernel.version}-${cacheKey(inp)}`);
  if (!existsSync(join(dir, 'ready'))) {
    const work = `${dir}.tmp-${process.pid}`;
    rmSync(work, { recursive: true, force: true });
    mkdirSync(join(work, 'stage'), { recursive: true });
    try {
      const vmlinux = unpackVmlinux(inp.kernel.image, inp.kernel.version, join(work, 'vmlinux'));
      stageTree(join(work, 'stage'), inp);
      packCpio(join(work, 'stage'), join(work, 'initramfs.cpio'));
      rmSync(join(work, 'stage'), { recursive: true, force: true });
      writeFileSync(join(work, 'kernel'), vmlinux ? 'vmlinux\n' : `${inp.kernel.image}\n`);
      writeFileSync(join(work, 'ready'), '');
      try {
        renameSync(work, dir);
        pruneOthers(base, dir);
      } catch {
        // Another test process finished the same build first: use that one.
        if (!existsSync(join(dir, 'ready'))) throw new Error(`cannot install the VM image at ${dir}`);
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  const now = new Date();
  utimesSync(dir, now, now); // in use: not stale for pruneOthers
  const k = readFileSync(join(dir, 'kernel'), 'utf8').trim();
  memo = {
    kernelVersion: inp.kernel.version,
    kernel: k === 'vmlinux' ? join(dir, 'vmlinux') : k,
    initramfs: join(dir, 'initramfs.cpio'),
    dir,
  };
  return memo;
}
