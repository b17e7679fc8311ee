// Golden bird.conf files: fixtures/bird-*/input.json (this node, the registry, the BGP settings)
// in, bird.conf out, each also parsed by BIRD itself (`bird -p`). Regenerate with
// UPDATE_GOLDEN=1 and review the diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { birdView, type BirdInput } from '../../planner/bird/view.ts';
import { renderBirdConf } from '../../planner/bird/render.ts';
import { findTool } from '../../executor/facts.ts';
import { ROOT, PLUGIN } from '../helpers/netns.ts';

const FIXTURES = join(ROOT, 'fixtures');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const BIRD = findTool('bird');
const noBird = existsSync(BIRD) ? undefined : 'needs bird (Debian bird2; scripts/setup.sh installs it)';
const scenarios = readdirSync(FIXTURES).filter((d) => d.startsWith('bird-') && existsSync(join(FIXTURES, d, 'input.json'))).sort();

const render = (input: BirdInput) => renderBirdConf(birdView(input));

test('there are golden bird.conf files for 1, 2 and 5 nodes, every ipipMode, peers, reflectors and passwords', () => {
  for (const s of ['bird-1-node', 'bird-2-nodes', 'bird-5-nodes', 'bird-never', 'bird-cross-subnet', 'bird-external-peer', 'bird-route-reflector', 'bird-reflector-client', 'bird-password']) {
    assert.ok(scenarios.includes(s), s);
  }
});

for (const scenario of scenarios) {
  const dir = join(FIXTURES, scenario);
  const input = JSON.parse(readFileSync(join(dir, 'input.json'), 'utf8')) as BirdInput;

  test(`golden bird.conf: ${scenario}`, () => {
    const got = render(input);
    // The registry's order does not matter, and rendering twice gives the same bytes.
    assert.equal(render({ ...input, nodes: [...input.nodes].reverse() }), got);
    const path = join(dir, 'bird.conf');
    if (UPDATE) writeFileSync(path, got);
    assert.ok(existsSync(path), `${scenario}/bird.conf is missing (UPDATE_GOLDEN=1 to generate, then review)`);
    assert.equal(got, readFileSync(path, 'utf8'), `${scenario}/bird.conf differs from the golden file`);
  });

  test(`bird -p parses ${scenario}/bird.conf`, { skip: noBird }, () => {
    const r = spawnSync(BIRD, ['-p', '-c', join(dir, 'bird.conf')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });
}

test('the CNI plugin bundle does not carry handlebars (only the agent and operator commands load it)', { skip: existsSync(PLUGIN) ? undefined : 'needs the built plugin (npm run build)' }, async () => {
  const markers = ['Handlebars', 'Sessions with routers outside the cluster'];
  // The markers do find the renderer in a bundle that has it...
  const { build } = await import('esbuild');
  const withRenderer = await build({ entryPoints: [join(ROOT, 'planner/bird/render.ts')], bundle: true, write: false, minify: true, platform: 'node', format: 'cjs', logLevel: 'silent' });
  const text = withRenderer.outputFiles[0]!.text;
  for (const m of markers) assert.ok(text.includes(m), `marker ${m} is in the renderer's bundle`);
  // ...and the plugin's bundle has none of them.
  const bundle = readFileSync(PLUGIN, 'utf8');
  for (const m of markers) assert.ok(!bundle.includes(m), `dist/testcni.cjs contains ${m}`);
});
