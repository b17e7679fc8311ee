import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shellQuote } from '../../planner/render.ts';

test('shellQuote leaves safe words alone and single-quotes the rest', () => {
  assert.equal(shellQuote('/usr/sbin/ip'), '/usr/sbin/ip');
  assert.equal(shellQuote('10.244.0.0/16'), '10.244.0.0/16');
  assert.equal(shellQuote('!'), "'!'");
  assert.equal(shellQuote("it's"), "'it'\\''s'");
  assert.equal(shellQuote('a b;rm -rf /'), "'a b;rm -rf /'");
  assert.equal(shellQuote('$(x)'), "'$(x)'");
});
