// docs/SECURITY.md describes the defaults the code has: every default path and the metrics
// address it names, and the metrics endpoint stays on loopback unless configured otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/netns.ts';
import { DEFAULTS } from '../../schemas/network-config.ts';
import { AGENT_DEFAULTS } from '../../agent/config.ts';

const doc = readFileSync(join(ROOT, 'docs', 'SECURITY.md'), 'utf8');

test('SECURITY.md names every default path and address the code uses', () => {
  for (const v of [DEFAULTS.stateDir, DEFAULTS.ipamDataDir, DEFAULTS.agentSocket, AGENT_DEFAULTS.metricsAddress]) {
    assert.ok(doc.includes(`\`${v}`), `SECURITY.md mentions ${v}`);
  }
});

test('the metrics endpoint listens on loopback by default', () => {
  assert.match(String(AGENT_DEFAULTS.metricsAddress), /^127\.0\.0\.1:\d+$/);
});
