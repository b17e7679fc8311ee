// The README's table of modes is derived from the registry: a mode added, removed or changed
// there shows up here as a failure until the table is regenerated (UPDATE_GOLDEN=1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODES } from '../../planner/registry.ts';
import { ROOT } from '../helpers/netns.ts';

const README = join(ROOT, 'README.md');
const START = '<!-- modes:start -->';
const END = '<!-- modes:end -->';

function table(): string {
  const rows = MODES.all().map((m) => {
    const keys = Object.keys(m.schema).map((k) => `\`${k}\``).join(', ') || '—';
    const lab = m.labUnsupported === null ? 'yes' : `no: ${m.labUnsupported}`;
    return `| \`${m.name}\`${m.name === MODES.defaultMode ? ' (default)' : ''} | ${m.summary} | ${keys} | ${m.node ? 'yes' : 'no'} | ${lab} |`;
  });
  return ['| mode | what it does | its own keys | node plan (agent) | `testcni lab` |', '|---|---|---|---|---|', ...rows].join('\n');
}

test('README: the table of modes is the registry\'s', () => {
  const text = readFileSync(README, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  assert.ok(a >= 0 && b > a, `README.md needs the markers ${START} and ${END}`);
  const want = `${START}\n${table()}\n${END}`;
  if (process.env.UPDATE_GOLDEN === '1') {
    writeFileSync(README, text.slice(0, a) + want + text.slice(b + END.length));
    return;
  }
  assert.equal(text.slice(a, b + END.length), want, 'regenerate with UPDATE_GOLDEN=1 npm test -- readme');
});
