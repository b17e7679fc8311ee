// Golden uninstall teardowns: fixtures/teardown-<mode>[-<scenario>]/request.json (the mode and its
// network config, what the teardown's queries returned on a node: captured from real kernels,
// the VM's for a mode this kernel lacks, facts, the route protocol) in; steps.json and steps.txt
// (the removals, then what was found and left alone) out. Regenerate with UPDATE_GOLDEN=1 and
// review the diff. Every mode whose node plan leaves node state has a teardown and a golden.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeFacts } from '../../model/plan.ts';
import { loadConfig } from '../../cni/config.ts';
import { MODES } from '../../planner/registry.ts';
import { renderNodeSteps } from '../../planner/render.ts';
import { canonicalJson } from '../../lib/canonical-json.ts';
import { ROOT } from '../helpers/netns.ts';
import { checkGolden } from '../helpers/golden.ts';

const FIXTURES = join(ROOT, 'fixtures');
const OUTPUTS = ['steps.json', 'steps.txt'];

interface TeardownRequest {
  mode: string;
  config?: Record<string, unknown>;
  proto: number;
  facts: NodeFacts;
  /** the agent's directories (default /run/testcni, /var/lib/testcni) */
  dirs?: { run: string; state: string };
  observed: Record<string, unknown>;
}

function artifacts(req: TeardownRequest): Record<string, string> {
  const mode = MODES.require(req.mode);
  const { config } = loadConfig({ cniVersion: '1.1.0', name: 'testcni', type: 'testcni', subnet: '10.244.0.0/16', mode: req.mode, ...req.config });
  const ctx = { config, facts: req.facts, routeProtocol: req.proto, dirs: req.dirs ?? { run: '/run/testcni', state: '/var/lib/testcni' } };
  const teardown = mode.node?.teardown;
  assert.ok(teardown, `${req.mode} has a teardown`);
  assert.deepEqual(Object.keys(teardown.observe(ctx)).sort(), Object.keys(req.observed).sort(), 'the request answers every query of the teardown');
  const { steps, kept } = teardown.plan(ctx, req.observed);
  const text = renderNodeSteps(`testcni uninstall: ${req.mode} node state (route protocol ${req.proto})`, steps)
    .replace('Plan: nothing to do; the node holds what it should.', 'Nothing of testcni\'s to remove.');
  return {
    'steps.json': canonicalJson({ steps, kept }, 2) + '\n',
    'steps.txt': text + (kept.length ? `\nLeft alone:\n${kept.map((k) => `  - ${k}`).join('\n')}\n` : ''),
  };
}

/** Every list the kernel printed, in reverse: the plan must not depend on listing order. */
function reversed(req: TeardownRequest): TeardownRequest {
  return { ...req, observed: Object.fromEntries(Object.entries(req.observed).map(([k, v]) => [k, Array.isArray(v) ? [...v].reverse() : v])) };
}

const scenarios = readdirSync(FIXTURES).filter((d) => d.startsWith('teardown-') && existsSync(join(FIXTURES, d, 'request.json'))).sort();

test('every mode with a node teardown has a golden teardown', () => {
  const modes = new Set(scenarios.map((s) => (JSON.parse(readFileSync(join(FIXTURES, s, 'request.json'), 'utf8')) as TeardownRequest).mode));
  for (const m of MODES.all()) if (m.node?.teardown) assert.ok(modes.has(m.name), `fixtures/teardown-${m.name}`);
});

test('a mode without node state has no teardown: uninstall finds nothing of it', () => {
  assert.equal(MODES.require('macvlan').node, null, 'macvlan: the children live in the pods\' namespaces and go with them');
});

for (const scenario of scenarios) {
  test(`teardown golden: ${scenario}`, () => {
    const dir = join(FIXTURES, scenario);
    const req = JSON.parse(readFileSync(join(dir, 'request.json'), 'utf8')) as TeardownRequest;
    const got = artifacts(req);
    assert.deepEqual(artifacts(reversed(req)), got);
    checkGolden(dir, scenario, got, OUTPUTS);
  });
}
