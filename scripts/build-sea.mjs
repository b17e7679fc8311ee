// The single executable (Node's single-executable applications): a copy of this Node binary,
// stripped of its debug symbols when `strip` is installed, with a blob injected by postject
// holding dist/testcni.cjs as the main script and the operator-command and agent bundles as
// assets (cli/lazy-bundle.ts loads them), and V8's code cache for the main script. It runs where
// no Node is installed.
//
// postject rewrites a ~90 MB file (~5 s here), so the step is skipped when its inputs (the
// bundles, this Node binary, postject) are unchanged since the last build.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const STRIP = ['/usr/bin/strip', '/bin/strip'].find((p) => existsSync(p)) ?? null;

function run(argv) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status ?? r.error?.message}): ${r.stderr}`);
  return r;
}

/**
 * @param {{root: string, main: string, assets: Record<string, string>, output: string, useCodeCache?: boolean}} o
 * @returns {Promise<{summary: string, rebuilt: boolean, ms: number, bytes: number}>}
 */
export async function buildSea(o) {
  const started = performance.now();
  const work = join(dirname(o.output), '.sea');
  mkdirSync(work, { recursive: true });
  const require = createRequire(join(o.root, 'package.json'));
  const postjectCli = require.resolve('postject/dist/cli.js');
  const postjectVersion = require('postject/package.json').version;
  const blob = join(work, 'testcni.blob');
  const config = {
    main: o.main,
    output: blob,
    disableExperimentalSEAWarning: true,
    // V8's code cache for the main script: ~4 ms off every start here (bench/runner-startup.mjs).
    useCodeCache: o.useCodeCache ?? true,
    assets: o.assets,
  };

  const node = statSync(process.execPath);
  const key = createHash('sha256');
  key.update(JSON.stringify({ config, node: [process.execPath, process.version, node.size, node.mtimeMs], postjectVersion, strip: STRIP }));
  for (const f of [o.main, ...Object.values(o.assets)]) key.update(readFileSync(f));
  const digest = key.digest('hex');
  const stamp = join(work, 'stamp');
  if (existsSync(o.output) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) {
    const bytes = statSync(o.output).size;
    return { summary: `${o.output} ${(bytes / 2 ** 20).toFixed(1)} MiB (unchanged)`, rebuilt: false, ms: performance.now() - started, bytes };
  }

  const configFile = join(work, 'sea-config.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  run([process.execPath, '--experimental-sea-config', configFile]);
  const tmp = `${o.output}.tmp-${process.pid}`;
  try {
    if (STRIP) run([STRIP, '-o', tmp, process.execPath]);
    else copyFileSync(process.execPath, tmp);
    // LIEF (inside postject) warns about Node's many ELF notes; only a failure is worth showing.
    run([process.execPath, postjectCli, tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SENTINEL_FUSE]);
    chmodSync(tmp, 0o755);
    renameSync(tmp, o.output);
  } finally {
    rmSync(tmp, { force: true });
  }
  writeFileSync(stamp, digest);
  const bytes = statSync(o.output).size;
  const ms = performance.now() - started;
  const how = STRIP ? 'stripped Node' : 'Node with debug symbols (install binutils to strip)';
  return { summary: `${o.output} ${(bytes / 2 ** 20).toFixed(1)} MiB (${how}, ${(ms / 1000).toFixed(1)} s)`, rebuilt: true, ms, bytes };
}
