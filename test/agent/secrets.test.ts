// The agent's reader of the secret files a mode names (BGP passwords).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { readSecretFiles } from '../../agent/secrets.ts';
import { CniError, Code } from '../../model/errors.ts';

test('secret files: text without its trailing newline; unreadable is code 7 naming the field; refused text not echoed', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-secrets-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  writeFileSync(a, 'pw-one\n', { mode: 0o600 });
  writeFileSync(b, 'pw two\r\n', { mode: 0o600 });
  assert.deepEqual(readSecretFiles({ 'x.aFile': a, 'x.bFile': b }), { 'x.aFile': 'pw-one', 'x.bFile': 'pw two' });
  assert.deepEqual(readSecretFiles({}), {});

  const missing = join(dir, 'missing');
  assert.throws(() => readSecretFiles({ 'x.aFile': a, 'bgp.externalPeers.0.passwordFile': missing }), (e: unknown) =>
    e instanceof CniError && e.code === Code.InvalidConfig && e.message === 'invalid network config: bgp.externalPeers.0.passwordFile' && e.details.includes(missing) && e.details.includes('ENOENT'));
  assert.throws(() => readSecretFiles({ 'x.dirFile': dir }), (e: unknown) => e instanceof CniError && e.message.endsWith('x.dirFile') && e.details.includes('EISDIR'));

  const check = (field: string, text: string) => {
    if (text.includes(' ')) throw new CniError(Code.InvalidConfig, `invalid network config: ${field}`, `${field}: no spaces`);
  };
  assert.throws(() => readSecretFiles({ 'x.bFile': b }, check), (e: unknown) => e instanceof CniError && e.message.endsWith('x.bFile') && !e.details.includes('pw two'));
  if (process.getuid?.() !== 0) {
    chmodSync(a, 0o000);
    assert.throws(() => readSecretFiles({ 'x.aFile': a }), /x\.aFile/);
  }
});
