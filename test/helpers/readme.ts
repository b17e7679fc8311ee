// A README section generated from the code: the text between `<!-- NAME:start -->` and
// `<!-- NAME:end -->` must be `body`; with UPDATE_GOLDEN=1 it is rewritten instead.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './netns.ts';

export const README = join(ROOT, 'README.md');

export function checkGeneratedSection(name: string, body: string, file = README): void {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  assert.ok(a >= 0 && b > a, `${file} needs the markers ${start} and ${end}`);
  const want = `${start}\n${body}\n${end}`;
  if (process.env.UPDATE_GOLDEN === '1') {
    writeFileSync(file, text.slice(0, a) + want + text.slice(b + end.length));
    return;
  }
  assert.equal(text.slice(a, b + end.length), want, 'regenerate with UPDATE_GOLDEN=1 npm test -- readme');
}
