// The image the manifests name (deploy/Containerfile) carries every program a mode's agent runs
// (its ModeDeploy.programs): a mode that needs a new one fails here until the image installs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/netns.ts';
import { MODES } from '../../planner/registry.ts';

/** The Debian packages the Containerfile installs (`apt-get install … PKG …`). */
function imagePackages(): string[] {
  const text = readFileSync(join(ROOT, 'deploy', 'Containerfile'), 'utf8').replace(/\\\n/g, ' ');
  return [...text.matchAll(/apt-get install ([^&\n]*)/g)].flatMap((m) => m[1]!.split(/\s+/).filter((w) => w && !w.startsWith('-')));
}

test('the image installs iproute2 and every package a mode\'s agent needs', () => {
  const pkgs = imagePackages();
  assert.ok(pkgs.includes('iproute2'), `iproute2 in ${pkgs.join(' ')}`);
  for (const m of MODES.all()) {
    for (const p of m.deploy?.programs ?? []) assert.ok(pkgs.includes(p.package), `${m.name} needs ${p.name} (${p.package}): ${p.why}`);
  }
});
