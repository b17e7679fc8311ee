// Runs every test/**/*.test.ts with node's test runner (TypeScript through tsx), after a
// build: the black-box tests exec the bundled plugin. Extra arguments filter test files by
// substring, e.g. `npm test -- golden`.
import { readdirSync, statSync, mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const filters = process.argv.slice(2);

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.ts') ? [p] : [];
  });
}

const build = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

const files = walk(join(root, 'test'))
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// The CA bundle variable some machines set makes every node start ~80 ms slower; the plugin
// never makes TLS connections, so tests (which exec it many times) run without it.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
// spec for people; a TAP copy to count from, for the plain closing line CI reads.
const tapFile = join(mkdtempSync(join(tmpdir(), 'testcni-tap-')), 'out.tap');
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter', 'spec', '--test-reporter-destination', 'stdout',
    '--test-reporter', 'tap', '--test-reporter-destination', tapFile, ...files],
  { cwd: root, stdio: 'inherit', env },
);
const tap = existsSync(tapFile) ? readFileSync(tapFile, 'utf8') : '';
const count = (k) => Number(tap.match(new RegExp(`^# ${k} (\\d+)$`, 'm'))?.[1] ?? 0);
rmSync(dirname(tapFile), { recursive: true, force: true });
console.log(`\ntests: ${count('pass')} passed, ${count('fail') + count('cancelled')} failed, ${count('skipped')} skipped`);
process.exit(r.status ?? 1);
