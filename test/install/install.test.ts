// testcni install: the executable copied atomically (0755, hashed, no temp left), the conflist
// written only once the agent reports ready, a clear error and no conflist on timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, statSync, existsSync, readdirSync, openSync, readSync, closeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { PLUGIN } from '../helpers/netns.ts';
import { copyExecutableAtomic, install, InstallError, type InstallDeps } from '../../install/install.ts';
import { readRecord } from '../../install/record.ts';
import type { AgentStatus } from '../../ipam/agent-protocol.ts';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tcinst-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const status = (ready: boolean, reason?: string): AgentStatus => ({
  ready, ...(reason ? { reason } : {}), node: 'n1', underlayIp: '198.18.0.11', block: ready ? '10.244.1.0/24' : null, gateway: null,
  etcd: { endpoints: [], reachable: ready, lastCheck: null }, ipam: null, nodes: [], leaving: [], routes: [], lastReconcile: null,
  registeredAt: null, registrationLapsed: false, version: 'test', converged: ready, mode: 'host-gw',
});

/** A fake clock that moves only when the installer sleeps, and a scripted agent. */
function fakeDeps(answers: (() => AgentStatus)[], onStatus: () => void = () => {}) {
  let clock = 1_000_000;
  const lines: string[] = [];
  let calls = 0;
  const deps: InstallDeps = {
    agentStatus: async () => {
      onStatus();
      const a = answers[Math.min(calls++, answers.length - 1)]!;
      return a();
    },
    sleep: async (ms) => {
      clock += ms;
    },
    now: () => clock,
    say: (l) => lines.push(l),
  };
  return { deps, lines, calls: () => calls, clock: () => clock };
}

const CONFLIST = JSON.stringify({ cniVersion: '1.1.0', name: 'n', plugins: [{ type: 'testcni', subnet: '10.244.0.0/16', ipam: { type: 'cluster' } }] });

test('copyExecutableAtomic: same bytes, mode 0755 whatever the source mode, sha256 returned, no temp file left', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src');
  const content = Buffer.alloc(3 << 20, 7); // spans several stream chunks
  content.write('testcni', 1 << 20);
  writeFileSync(src, content, { mode: 0o644 });
  const dest = join(dir, 'bin', 'testcni');
  const sha = await copyExecutableAtomic(src, dest);
  assert.equal(sha, createHash('sha256').update(content).digest('hex'));
  assert.ok(readFileSync(dest).equals(content));
  assert.equal(statSync(dest).mode & 0o777, 0o755);
  assert.deepEqual(readdirSync(join(dir, 'bin')), ['testcni'], 'no temp file left beside it');
});

test('copyExecutableAtomic replaces by rename: a reader of the old file keeps the old bytes', async (t) => {
  const dir = tempDir(t);
  const dest = join(dir, 'testcni');
  writeFileSync(dest, 'old-binary');
  const fd = openSync(dest, 'r'); // as a runtime executing the old plugin would hold it
  t.after(() => closeSync(fd));
  writeFileSync(join(dir, 'new'), 'new-binary!');
  await copyExecutableAtomic(join(dir, 'new'), dest);
  const buf = Buffer.alloc(10);
  readSync(fd, buf, 0, 10, 0);
  assert.equal(buf.toString(), 'old-binary', 'the old inode is untouched');
  assert.equal(readFileSync(dest, 'utf8'), 'new-binary!');
});

test('copyExecutableAtomic refuses a source that is not a file', async (t) => {
  const dir = tempDir(t);
  await assert.rejects(copyExecutableAtomic(dir, join(dir, 'x')), InstallError);
});

test('install writes the conflist only after the agent reports ready, and records what it installed', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'exe'), 'EXE');
  const confDir = join(dir, 'net.d');
  const conflistPath = join(confDir, '10-testcni.conflist');
  const unreachable = () => {
    throw Object.assign(new Error('node agent not reachable'), { details: 'ENOENT' });
  };
  const f = fakeDeps([unreachable, () => status(false, 'etcd unreachable'), () => status(true)], () => {
    assert.ok(existsSync(join(dir, 'bin', 'testcni')), 'the binary is in place before the agent is even asked');
    assert.equal(existsSync(conflistPath), false, 'no conflist while the agent is not ready');
  });
  const rec = await install({
    source: join(dir, 'exe'), binDir: join(dir, 'bin'), binName: 'testcni', agentSocket: '/run/x.sock', stateDir: join(dir, 'state'),
    conflist: { text: CONFLIST, confDir, name: '10-testcni.conflist' }, timeoutMs: 60_000, pollMs: 500,
  }, f.deps);
  assert.equal(f.calls(), 3);
  assert.equal(readFileSync(conflistPath, 'utf8'), CONFLIST);
  assert.equal(statSync(conflistPath).mode & 0o777, 0o644);
  assert.deepEqual(readdirSync(confDir), ['10-testcni.conflist'], 'no temp file left in the conf dir');
  assert.deepEqual(readRecord(join(dir, 'state')), rec);
  assert.equal(rec.conflist?.path, conflistPath);
  assert.equal(rec.binary?.sha256, createHash('sha256').update('EXE').digest('hex'));
  assert.ok(f.lines.some((l) => l.includes('node agent not reachable: ENOENT')), f.lines.join('\n'));
  assert.ok(f.lines.some((l) => l.includes('not ready: etcd unreachable')), f.lines.join('\n'));
});

test('install times out with the last reason, leaving the binary installed and no conflist', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'exe'), 'EXE');
  const f = fakeDeps([() => status(false, 'no block claimed yet')]);
  await assert.rejects(
    install({
      source: join(dir, 'exe'), binDir: join(dir, 'bin'), binName: 'testcni', agentSocket: '/run/x.sock', stateDir: join(dir, 'state'),
      conflist: { text: CONFLIST, confDir: join(dir, 'net.d'), name: 'c.conflist' }, timeoutMs: 5000, pollMs: 1000,
    }, f.deps),
    (e: Error) => e instanceof InstallError && /\/run\/x\.sock did not report ready within 5 s \(last: not ready: no block claimed yet\); the conflist was not written/.test(e.message),
  );
  assert.ok(f.calls() >= 5 && f.calls() <= 7, `polled about every second for 5 s (${f.calls()} calls)`);
  assert.equal(f.clock() - 1_000_000, 5000, 'waited exactly the timeout');
  assert.equal(existsSync(join(dir, 'net.d', 'c.conflist')), false);
  assert.ok(existsSync(join(dir, 'bin', 'testcni')));
  assert.equal(readRecord(join(dir, 'state'))?.conflist, null, 'the record names no conflist');
});

test('install without a conflist installs the binary only and never asks the agent', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'exe'), 'EXE');
  const f = fakeDeps([() => status(true)]);
  await install({ source: join(dir, 'exe'), binDir: join(dir, 'bin'), binName: 'testcni', agentSocket: null, stateDir: join(dir, 's'), conflist: null, timeoutMs: 1000 }, f.deps);
  assert.equal(f.calls(), 0);
  assert.equal(readFileSync(join(dir, 'bin', 'testcni'), 'utf8'), 'EXE');
});

test('testcni install --keep-running stays after installing and exits 0 on SIGTERM (a sidecar)', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'exe'), 'EXE');
  const child = spawn(process.execPath, [PLUGIN, 'install', '--source', join(dir, 'exe'), '--bin-dir', join(dir, 'bin'), '--state-dir', join(dir, 's'), '--keep-running'], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (b) => (stderr += b));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  while (!stderr.includes('staying until SIGTERM') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.match(stderr, /installed .*bin\/testcni[\s\S]*staying until SIGTERM/);
  assert.equal(readFileSync(join(dir, 'bin', 'testcni'), 'utf8'), 'EXE');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(child.exitCode, null, 'still running');
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('testcni install refuses a conflist the plugin would refuse, before installing anything', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'exe'), 'EXE');
  writeFileSync(join(dir, 'bad.conflist'), JSON.stringify({ cniVersion: '1.1.0', name: 'n', plugins: [{ type: 'testcni', subnet: '10.244.0.0/33' }] }));
  const r = spawnSync(process.execPath, [PLUGIN, 'install', '--source', join(dir, 'exe'), '--bin-dir', join(dir, 'bin'), '--conflist', join(dir, 'bad.conflist'), '--state-dir', join(dir, 's')], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /testcni install: .*subnet/);
  assert.equal(existsSync(join(dir, 'bin')), false, 'nothing installed');
});

test('install copies the compiled BPF objects beside the executable into bpf/ beside the installed one, and records them', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'exe'), 'EXE');
  mkdirSync(join(dir, 'bpf'));
  writeFileSync(join(dir, 'bpf', 'vxlan.o'), 'OBJ');
  writeFileSync(join(dir, 'bpf', 'notes.txt'), 'not an object');
  const f = fakeDeps([() => status(true)]);
  const rec = await install({ source: join(dir, 'exe'), binDir: join(dir, 'bin'), binName: 'testcni', agentSocket: null, stateDir: join(dir, 's'), conflist: null, timeoutMs: 1000 }, f.deps);
  const obj = join(dir, 'bin', 'bpf', 'vxlan.o');
  assert.equal(readFileSync(obj, 'utf8'), 'OBJ');
  assert.equal(statSync(obj).mode & 0o777, 0o644);
  assert.deepEqual(readdirSync(join(dir, 'bin', 'bpf')), ['vxlan.o'], 'objects only, no temp file');
  assert.deepEqual(rec.objects, [{ path: obj, sha256: createHash('sha256').update('OBJ').digest('hex') }]);
  assert.deepEqual(readRecord(join(dir, 's'))!.objects, rec.objects);
});
