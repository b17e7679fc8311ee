// Golden node plans: fixtures/node-<scenario>/request.json (the mode and its network config, the
// registry, this node's name, what the mode's node queries returned, facts, the route protocol)
// in; steps.json and steps.txt out, and for a mode with daemons daemons.json (the specs without
// their view) and each daemon's rendered configuration (bird.conf, also parsed by `bird -p`).
// Same convention as golden.test.ts: regenerate with UPDATE_GOLDEN=1 and review the diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeRecord } from '../../model/node.ts';
import type { NodeFacts } from '../../model/plan.ts';
import { loadConfig } from '../../cni/config.ts';
import { MODES } from '../../planner/registry.ts';
import { renderNodeSteps } from '../../planner/render.ts';
import { canonicalJson } from '../../lib/canonical-json.ts';
import { renderTemplate } from '../../planner/templates.ts';
import { findTool } from '../../executor/facts.ts';
import { spawnSync } from 'node:child_process';
import { ROOT } from '../helpers/netns.ts';
import { checkGolden } from '../helpers/golden.ts';

const FIXTURES = join(ROOT, 'fixtures');
const OUTPUTS = ['steps.json', 'steps.txt', 'daemons.json', 'bird.conf'];
const BIRD = findTool('bird');

interface NodeRequest {
  mode: string;
  /** network config keys beyond the defaults below (the mode's section, …) */
  config?: Record<string, unknown>;
  self: string;
  proto: number;
  facts: NodeFacts;
  registry: NodeRecord[];
  /** what each of the mode's node queries returned, by name */
  observed: Record<string, unknown>;
  /** the node's underlay network (default 198.18.0.0/24) */
  underlaySubnet?: string;
  /** the secret files' text, by field (what the agent read) */
  secrets?: Record<string, string>;
}

const DIRS = { run: '/run/testcni', state: '/var/lib/testcni' };

function artifacts(req: NodeRequest): Record<string, string> {
  const mode = MODES.require(req.mode);
  const { config } = loadConfig({ cniVersion: '1.1.0', name: 'testcni', type: 'testcni', subnet: '10.244.0.0/16', mode: req.mode, ...req.config });
  const self = req.registry.find((n) => n.name === req.self) ?? { name: req.self, underlayIp: '', block: '' };
  const ctx = { config, facts: req.facts, self, nodes: req.registry, routeProtocol: req.proto, underlaySubnet: req.underlaySubnet ?? '198.18.0.0/24', dirs: DIRS, secrets: req.secrets ?? {} };
  const node = mode.node!;
  const steps = node.plan(ctx, req.observed);
  const others = req.registry.filter((n) => n.name !== req.self).length;
  const title = `testcni node plan for ${req.self} (mode ${req.mode}, route protocol ${req.proto}; ${others} other node${others === 1 ? '' : 's'} in the registry)`;
  const out: Record<string, string> = {
    'steps.json': canonicalJson(steps, 2) + '\n',
    'steps.txt': renderNodeSteps(title, steps),
  };
  const daemons = node.daemons?.(ctx, req.observed) ?? [];
  if (daemons.length > 0) {
    out['daemons.json'] = canonicalJson(daemons.map((d) => ({ ...d, config: { ...d.config, view: `(rendered: ${d.config.template})` } })), 2) + '\n';
    for (const d of daemons) out[d.config.template] = renderTemplate(d.config.template, d.config.view);
  }
  return out;
}

/** The request with every list in reverse: the plan must not depend on listing order. */
function reversed(req: NodeRequest): NodeRequest {
  const observed = Object.fromEntries(Object.entries(req.observed).map(([k, v]) => [k, Array.isArray(v) ? [...v].reverse() : v]));
  return { ...req, registry: [...req.registry].reverse(), observed };
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
    // Nothing depends on the order etcd or the kernel list things in.
    assert.deepEqual(artifacts(reversed(req)), got);
    checkGolden(dir, scenario, got, OUTPUTS);
  });

  if (existsSync(join(FIXTURES, scenario, 'bird.conf'))) {
    test(`bird -p parses ${scenario}/bird.conf`, { skip: existsSync(BIRD) ? undefined : 'needs bird (Debian bird2; scripts/setup.sh installs it)' }, () => {
      const r = spawnSync(BIRD, ['-p', '-c', join(FIXTURES, scenario, 'bird.conf')], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    });
  }
}
