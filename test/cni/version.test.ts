import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SUPPORTED_VERSIONS, LATEST, isSupported, requireSupported, compareVersions, atLeast, requireVerbVersion } from '../../cni/version.ts';
import { CniError, Code } from '../../model/errors.ts';

test('supported versions are 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0, latest 1.1.0', () => {
  assert.deepEqual([...SUPPORTED_VERSIONS], ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  assert.equal(LATEST, '1.1.0');
  for (const v of SUPPORTED_VERSIONS) assert.ok(isSupported(v), v);
});

test('anything else is unsupported, including non-strings and near misses', () => {
  for (const v of ['0.1.0', '0.2.0', '0.3', '1.0', '1.1', '1.1.0 ', 'v1.1.0', '1.2.0', '2.0.0', '', null, undefined, 1.1, ['1.1.0'], {}]) {
    assert.equal(isSupported(v), false, JSON.stringify(v));
  }
});

test('requireSupported returns the version or throws code 1 listing what is supported', () => {
  for (const v of SUPPORTED_VERSIONS) assert.equal(requireSupported(v), v);
  for (const v of ['0.2.0', '1.2.0', 7, null]) {
    assert.throws(
      () => requireSupported(v),
      (e: unknown) => {
        assert.ok(e instanceof CniError);
        assert.equal(e.code, Code.IncompatibleVersion);
        assert.equal(e.code, 1);
        assert.ok(e.details.includes(JSON.stringify(v)), e.details);
        assert.ok(e.details.includes(SUPPORTED_VERSIONS.join(', ')), e.details);
        return true;
      },
    );
  }
});

test('compareVersions is numeric per component, not lexical', () => {
  const ordered = ['0.1.0', '0.3.0', '0.3.1', '0.4.0', '0.10.0', '1.0.0', '1.1.0', '1.9.0', '1.10.0', '2.0.0'];
  for (let i = 0; i < ordered.length; i++) {
    for (let j = 0; j < ordered.length; j++) {
      const c = compareVersions(ordered[i]!, ordered[j]!);
      assert.equal(Math.sign(c), Math.sign(i - j), `${ordered[i]} vs ${ordered[j]}`);
    }
  }
  assert.equal(compareVersions('1.1', '1.1.0'), 0); // a missing component counts as 0
});

test('atLeast gates the verbs: CHECK from 0.4.0, GC/STATUS from 1.1.0', () => {
  const check = SUPPORTED_VERSIONS.filter((v) => atLeast(v, '0.4.0'));
  assert.deepEqual(check, ['0.4.0', '1.0.0', '1.1.0']);
  const gc = SUPPORTED_VERSIONS.filter((v) => atLeast(v, '1.1.0'));
  assert.deepEqual(gc, ['1.1.0']);
});

test('requireVerbVersion: CHECK needs 0.4.0, GC and STATUS 1.1.0, code 1 otherwise', () => {
  const allowed: Record<string, string[]> = {
    ADD: [...SUPPORTED_VERSIONS],
    DEL: [...SUPPORTED_VERSIONS],
    CHECK: ['0.4.0', '1.0.0', '1.1.0'],
    GC: ['1.1.0'],
    STATUS: ['1.1.0'],
  };
  for (const [verb, ok] of Object.entries(allowed)) {
    for (const v of SUPPORTED_VERSIONS) {
      if (ok.includes(v)) {
        assert.doesNotThrow(() => requireVerbVersion(verb, v), `${verb} ${v}`);
        continue;
      }
      assert.throws(
        () => requireVerbVersion(verb, v),
        (e: unknown) => e instanceof CniError && e.code === Code.IncompatibleVersion && e.message.includes(verb) && e.details.includes(v),
        `${verb} ${v}`,
      );
    }
  }
});
