// The planner is pure: no file system, processes, environment, clock or randomness.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/netns.ts';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const FORBIDDEN: [RegExp, string][] = [
  [/from 'node:(fs|child_process|net|os|dgram|http|https)'/, 'I/O module'],
  [/process\.(env|pid|cwd|hrtime)/, 'process state'],
  [/Date\.now|new Date\(/, 'the clock'],
  [/Math\.random|randomBytes|randomUUID/, 'randomness'],
  [/from '\.\.\/(executor|ipam|cli)\//, 'a module with I/O'],
];

test('planner/ modules use no I/O, environment, clock or randomness', () => {
  const files = sources(join(ROOT, 'planner'));
  assert.ok(files.length >= 6);
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const [re, what] of FORBIDDEN) assert.ok(!re.test(text), `${f.slice(ROOT.length + 1)} uses ${what}`);
  }
});

test('model/ imports no other layer; planner, executor, ipam, agent, schemas and lab never import cni/', () => {
  const rel = (f: string) => f.slice(ROOT.length + 1);
  for (const f of sources(join(ROOT, 'model'))) {
    const imports = [...readFileSync(f, 'utf8').matchAll(/from '(\.[^']+)'/g)].map((m) => m[1]!);
    assert.ok(imports.every((i) => i.startsWith('./')), `${rel(f)} imports outside model/: ${imports.join(', ')}`);
  }
  const offenders = ['planner', 'executor', 'ipam', 'agent', 'schemas', 'lab', 'model', 'lib']
    .flatMap((d) => sources(join(ROOT, d)))
    .filter((f) => /from '(\.\.\/)+cni\//.test(readFileSync(f, 'utf8')))
    .map(rel);
  assert.deepEqual(offenders, []);
});

test('only executor/runner.ts starts processes', () => {
  const dirs = ['cni', 'planner', 'executor', 'ipam', 'cli', 'lib', 'schemas', 'agent', 'lab'];
  const offenders = dirs
    .flatMap((d) => sources(join(ROOT, d)))
    .filter((f) => /from 'node:child_process'/.test(readFileSync(f, 'utf8')))
    .map((f) => f.slice(ROOT.length + 1));
  assert.deepEqual(offenders, ['executor/runner.ts']);
});

test('only cni/output.ts writes the CNI stdout document', () => {
  const offenders = ['cni', 'planner', 'executor', 'ipam', 'lib', 'schemas']
    .flatMap((d) => sources(join(ROOT, d)))
    .filter((f) => /process\.stdout|writeSync\(1|console\.log/.test(readFileSync(f, 'utf8')))
    .map((f) => f.slice(ROOT.length + 1));
  assert.deepEqual(offenders, ['cni/output.ts']);
});
