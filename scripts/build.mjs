// Build: compile the schemas to standalone validators, then bundle with esbuild.
// CommonJS bundles (CommonJS starts ~6-10 ms faster than ESM here): the CNI entry, and the
// operator commands and the node agent, which it loads only when asked, never on the CNI path.
// Then the single executable dist/testcni (scripts/build-sea.mjs) carrying all three.
import { build } from 'esbuild';
import { mkdirSync, writeFileSync, renameSync, chmodSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSea } from './build-sea.mjs';
import { etcd3ProtoDescriptor } from './etcd3-protos.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = performance.now();
await import('./gen-validators.mjs');
await import('./gen-templates.mjs');
mkdirSync(join(root, 'dist'), { recursive: true });

// cli/main.ts imports the operator commands and the agent lazily; in the bundle those imports
// become cli/lazy-bundle.ts, which loads the sibling bundle (or, in the single executable, the
// embedded asset), so the CNI path never loads them.
const LAZY = { './commands.ts': 'commands.cjs', '../agent/main.ts': 'agent.cjs' };
const lazyBundles = {
  name: 'lazy-bundles',
  setup(b) {
    b.onResolve({ filter: /^(\.\/commands|\.\.\/agent\/main)\.ts$/ }, (a) => ({ path: LAZY[a.path], namespace: 'lazy-bundle' }));
    b.onResolve({ filter: /^\.\/(commands|agent)\.cjs$/ }, (a) => ({ path: a.path, external: true }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-bundle' }, (a) => ({
      contents: `module.exports = require(${JSON.stringify(join(root, 'cli/lazy-bundle.ts'))}).loadBundle(${JSON.stringify(a.path)}, () => require("./${a.path}"));`,
      resolveDir: root,
      loader: 'js',
    }));
  },
};

// etcd3 reads its .proto files from its package directory at run time; the agent bundle carries
// them instead, as the descriptor proto-loader would have built from them, so it needs no
// node_modules (and the single executable can carry it).
const etcd3Protos = {
  name: 'etcd3-protos',
  setup(b) {
    b.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (a) => {
      const src = readFileSync(a.path, 'utf8');
      const call = '(0, proto_loader_1.loadSync)(`${__dirname}/../proto/rpc.proto`, {';
      if (!src.includes(call)) throw new Error(`etcd3 changed how it loads its protos (${a.path}): update scripts/build.mjs`);
      const descriptor = JSON.stringify(etcd3ProtoDescriptor(join(dirname(a.path), '../proto/rpc.proto')));
      return { contents: src.replace(call, `(0, proto_loader_1.fromJSON)(${descriptor}, {`), loader: 'js' };
    });
  },
};

const common = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // Smaller bundles parse faster; every plugin start pays for the parse.
  minify: true,
  keepNames: false,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
  write: false,
  // import() of a built-in becomes require(): the single executable runs its main script and the
  // embedded bundles without an ES module loader, where import() fails.
  supported: { 'dynamic-import': false },
};
const results = await Promise.all([
  build({ ...common, entryPoints: [join(root, 'cli/main.ts')], outfile: join(root, 'dist/testcni.cjs'), plugins: [lazyBundles], banner: { js: '#!/usr/bin/env node' } }),
  build({ ...common, entryPoints: [join(root, 'cli/commands.ts')], outfile: join(root, 'dist/commands.cjs') }),
  build({ ...common, entryPoints: [join(root, 'agent/main.ts')], outfile: join(root, 'dist/agent.cjs'), plugins: [etcd3Protos] }),
]);
// Every bundle is self-contained: built-in modules and the two sibling bundles are all it may
// require at run time (the single executable has no node_modules).
for (const r of results) {
  for (const [file, out] of Object.entries(r.metafile.outputs)) {
    const loose = out.imports.filter((i) => i.external && !isBuiltin(i.path) && !/^\.\/(commands|agent)\.cjs$/.test(i.path));
    if (loose.length) throw new Error(`${file} requires ${loose.map((i) => i.path).join(', ')} at run time: bundle it`);
  }
}
// Replace each bundle atomically: tests running meanwhile see the old file or the new one.
for (const r of results) {
  for (const f of r.outputFiles) {
    const tmp = `${f.path}.tmp-${process.pid}`;
    writeFileSync(tmp, f.contents, { mode: f.path.endsWith('testcni.cjs') ? 0o755 : 0o644 });
    renameSync(tmp, f.path);
  }
}
chmodSync(join(root, 'dist/testcni.cjs'), 0o755);
const outputs = results.flatMap((r) => Object.entries(r.metafile.outputs)).map(([f, o]) => `${f} ${(o.bytes / 1024).toFixed(0)} KiB`);
console.error(`built: ${outputs.join(', ')} (${Math.round(performance.now() - started)} ms)`);
// The vxlan mode's tc programs: bpf/*.c -> dist/bpf/*.o, when clang is here (scripts/setup.sh
// installs it). Without clang everything else still builds; vxlan cannot load its programs.
const clang = ['/usr/bin/clang', '/usr/local/bin/clang'].find((p) => existsSync(p));
const sources = readdirSync(join(root, 'bpf')).filter((f) => f.endsWith('.c')).sort();
const missing = !clang ? 'clang' : !existsSync('/usr/include/bpf/bpf_helpers.h') ? 'the libbpf-dev headers' : null;
if (missing) {
  console.error(`built: no BPF objects (${missing} not found): the vxlan mode's programs (${sources.join(', ')}) were not built`);
} else {
  mkdirSync(join(root, 'dist/bpf'), { recursive: true });
  for (const src of sources) {
    const out = join(root, 'dist/bpf', src.replace(/\.c$/, '.o'));
    const tmp = `${out}.tmp-${process.pid}`;
    const r = spawnSync(clang, ['-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', `-I/usr/include/${multiarch()}`,
      '-c', join(root, 'bpf', src), '-o', tmp], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) {
      console.error(`build: clang failed on bpf/${src}`);
      process.exit(1);
    }
    renameSync(tmp, out);
  }
  console.error(`built: ${sources.map((s) => `dist/bpf/${s.replace(/\.c$/, '.o')}`).join(', ')}`);
}

/** Debian's directory of asm/ headers for this machine (x86_64-linux-gnu, aarch64-linux-gnu). */
function multiarch() {
  const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch] ?? process.arch;
  return `${arch}-linux-gnu`;
}

const sea = await buildSea({
  root,
  main: join(root, 'dist/testcni.cjs'),
  assets: { 'commands.cjs': join(root, 'dist/commands.cjs'), 'agent.cjs': join(root, 'dist/agent.cjs') },
  output: join(root, 'dist/testcni'),
});
console.error(`built: ${sea.summary}`);
