// Golden plans: fixtures/<scenario>/request.json in; plan.json, plan.txt, plan.sh and
// result.json (ADD) or error.json out. Regenerate with UPDATE_GOLDEN=1 and review the diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../cni/config.ts';
import { requireVerbVersion } from '../../cni/version.ts';
import { serialiseResult } from '../../cni/result.ts';
import { toCniError } from '../../model/errors.ts';
import { compile } from '../../planner/compile.ts';
import { renderPlan } from '../../planner/render.ts';
import type { PlanRequest } from '../../planner/mode.ts';
import { canonicalJson } from '../../lib/canonical-json.ts';
import { ROOT } from '../helpers/netns.ts';
import { MODES } from '../../planner/registry.ts';

const FIXTURES = join(ROOT, 'fixtures');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const OUTPUTS = ['plan.json', 'plan.txt', 'plan.sh', 'result.json', 'error.json'];

type Request = Omit<PlanRequest, 'config'> & { config: unknown };

function artifacts(req: Request): Record<string, string> {
  try {
    const { config } = loadConfig(req.config);
    requireVerbVersion(req.command, config.cniVersion);
    const plan = compile({ ...req, config }, MODES.require(config.mode));
    const out: Record<string, string> = {
      'plan.json': renderPlan(plan, 'json', req.facts),
      'plan.txt': renderPlan(plan, 'text', req.facts),
    };
    if (req.command !== 'CHECK') out['plan.sh'] = renderPlan(plan, 'sh', req.facts);
    if (plan.result) out['result.json'] = JSON.stringify(serialiseResult(plan.result, config.cniVersion), null, 2) + '\n';
    return out;
  } catch (e) {
    const err = toCniError(e);
    return { 'error.json': canonicalJson({ code: err.code, msg: err.message, details: err.details }, 2) + '\n' };
  }
}

// node-* scenarios are node-level plans (node-golden.test.ts), not CNI requests.
const scenarios = readdirSync(FIXTURES).filter((d) => !d.startsWith('node-') && existsSync(join(FIXTURES, d, 'request.json'))).sort();

test('there are golden scenarios for every cniVersion and verb of host-gw', () => {
  for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
    for (const verb of ['add', 'del', 'check']) assert.ok(scenarios.includes(`host-gw-${verb}-${v}`), `host-gw-${verb}-${v}`);
  }
});

for (const scenario of scenarios) {
  test(`golden: ${scenario}`, () => {
    const dir = join(FIXTURES, scenario);
    const req = JSON.parse(readFileSync(join(dir, 'request.json'), 'utf8')) as Request;
    const got = artifacts(req);
    // Compiling twice gives the same bytes: nothing depends on time, randomness or key order.
    assert.deepEqual(artifacts(req), got);
    if (UPDATE) {
      for (const f of OUTPUTS) rmSync(join(dir, f), { force: true });
      for (const [f, text] of Object.entries(got)) writeFileSync(join(dir, f), text);
      return;
    }
    for (const f of OUTPUTS) {
      const path = join(dir, f);
      if (!(f in got)) {
        assert.ok(!existsSync(path), `${scenario}/${f} exists but the planner no longer produces it (UPDATE_GOLDEN=1 to regenerate)`);
        continue;
      }
      assert.ok(existsSync(path), `${scenario}/${f} is missing (UPDATE_GOLDEN=1 to generate, then review)`);
      assert.equal(got[f], readFileSync(path, 'utf8'), `${scenario}/${f} differs from the golden file`);
    }
  });
}
