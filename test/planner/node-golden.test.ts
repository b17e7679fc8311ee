// Golden node plans: fixtures/node-<scenario>/request.json (the registry, this node's name, the
// kernel's `ip -j route show proto N` output, facts, proto) in; steps.json and steps.txt out.
// Same convention as golden.test.ts: regenerate with UPDATE_GOLDEN=1 and review the diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { desiredRoutes, routeSteps, parseRoutes, type NodeRecord } from '../../planner/node.ts';
import { shellQuote } from '../../planner/render.ts';
import type { NodeFacts, Step } from '../../planner/types.ts';
import { canonicalJson } from '../../lib/canonical-json.ts';
import { ROOT } from '../helpers/netns.ts';

const FIXTURES = join(ROOT, 'fixtures');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const OUTPUTS = ['steps.json', 'steps.txt'];

interface NodeRequest {
  self: string;
  proto: number;
  facts: NodeFacts;
  registry: NodeRecord[];
  /** `ip -j route show proto <proto>` as the kernel printed it */
  observed: unknown;
}

const MARK: Record<string, string> = { add: '+', replace: '~', del: '-' };

function text(req: NodeRequest, desired: ReturnType<typeof desiredRoutes>, observedCount: number, steps: Step[]): string {
  const others = req.registry.filter((n) => n.name !== req.self).length;
  const lines = [
    `testcni node plan for ${req.self} (route protocol ${req.proto})`,
    `  registry: ${others} other node${others === 1 ? '' : 's'}, ${desired.length} with a route; kernel: ${observedCount} route${observedCount === 1 ? '' : 's'} of ours`,
    '',
  ];
  steps.forEach((s, i) => {
    lines.push(`${String(i + 1).padStart(3)}. ${MARK[s.argv[2]!] ?? '?'} ${s.describe}  [${s.scope} step, node netns]`);
    lines.push(`       ${s.id}`);
    lines.push(`       $ ${s.argv.map(shellQuote).join(' ')}`);
  });
  const verbs = (v: string) => steps.filter((s) => s.argv[2] === v).length;
  if (steps.length > 0) lines.push('');
  lines.push(steps.length === 0
    ? 'Plan: nothing to do; the kernel matches the registry.'
    : `Plan: ${steps.length} step${steps.length === 1 ? '' : 's'} (${verbs('add')} add, ${verbs('replace')} replace, ${verbs('del')} del).`);
  return lines.join('\n') + '\n';
}

function artifacts(req: NodeRequest): Record<string, string> {
  const observed = parseRoutes(req.observed);
  const desired = desiredRoutes(req.self, req.registry);
  const steps = routeSteps(desired, observed, req.facts, req.proto);
  return {
    'steps.json': canonicalJson(steps, 2) + '\n',
    'steps.txt': text(req, desired, observed.length, steps),
  };
}

const scenarios = readdirSync(FIXTURES).filter((d) => d.startsWith('node-') && existsSync(join(FIXTURES, d, 'request.json'))).sort();

test('there are golden node plans for join, leave, a moved node, steady state and a mixed registry', () => {
  for (const s of ['node-join', 'node-leave', 'node-moved', 'node-steady', 'node-mixed', 'node-alone']) assert.ok(scenarios.includes(s), s);
});

for (const scenario of scenarios) {
  test(`node golden: ${scenario}`, () => {
    const dir = join(FIXTURES, scenario);
    const req = JSON.parse(readFileSync(join(dir, 'request.json'), 'utf8')) as NodeRequest;
    const got = artifacts(req);
    // The registry and the kernel's routes listed in reverse give the same bytes: nothing
    // depends on the order etcd or the kernel list them in.
    const reversed = { ...req, registry: [...req.registry].reverse(), observed: Array.isArray(req.observed) ? [...req.observed].reverse() : req.observed };
    assert.deepEqual(artifacts(reversed), got);
    if (UPDATE) {
      for (const f of OUTPUTS) rmSync(join(dir, f), { force: true });
      for (const [f, t] of Object.entries(got)) writeFileSync(join(dir, f), t);
      return;
    }
    for (const f of OUTPUTS) {
      const path = join(dir, f);
      assert.ok(existsSync(path), `${scenario}/${f} is missing (UPDATE_GOLDEN=1 to generate, then review)`);
      assert.equal(got[f], readFileSync(path, 'utf8'), `${scenario}/${f} differs from the golden file`);
    }
  });
}
