// Golden files: what a test produced for a scenario against fixtures/<scenario>/<file>. With
// UPDATE_GOLDEN=1 the files are rewritten instead (review the diff); a file the code no longer
// produces must not linger.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const UPDATE_GOLDEN = process.env.UPDATE_GOLDEN === '1';

/** Fixture directories that are not CNI request scenarios (golden.test.ts), by prefix. */
export const NON_REQUEST_FIXTURES = ['node-', 'teardown-'];

export function checkGolden(dir: string, scenario: string, got: Record<string, string>, outputs: readonly string[]): void {
  if (UPDATE_GOLDEN) {
    for (const f of outputs) rmSync(join(dir, f), { force: true });
    for (const [f, text] of Object.entries(got)) writeFileSync(join(dir, f), text);
    return;
  }
  for (const f of outputs) {
    const path = join(dir, f);
    if (!(f in got)) {
      assert.ok(!existsSync(path), `${scenario}/${f} exists but the code no longer produces it (UPDATE_GOLDEN=1 to regenerate)`);
      continue;
    }
    assert.ok(existsSync(path), `${scenario}/${f} is missing (UPDATE_GOLDEN=1 to generate, then review)`);
    assert.equal(got[f], readFileSync(path, 'utf8'), `${scenario}/${f} differs from the golden file`);
  }
}
