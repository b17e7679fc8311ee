// The agent's node daemons (agent/daemons/): whatever a mode declares, run with real processes.
// A small shell daemon stands in for BIRD here (BIRD itself: test/agent/bird-supervisor.test.ts
// and the ipip lab): its configuration must start with "ok", it writes its PID file, and its
// reload and refresh commands leave marks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { NodeDaemons } from '../../agent/daemons/manager.ts';
import { ProcessRunner } from '../../executor/runner.ts';
import { findTool } from '../../executor/facts.ts';
import { CONFIG_PATH_ARG, type DaemonSpec, type PeerSession } from '../../model/daemon.ts';
import { pidAlive, stopPid } from '../../lib/process.ts';
import { memoryLog, waitFor } from '../helpers/bgp.ts';

const DAEMON = `#!/bin/sh
# toyd CONFIG PIDFILE: a foreground daemon that records its PID and waits to be stopped
echo $$ > "$2"
trap 'rm -f "$2"; exit 0' TERM
while :; do sleep 0.05; done
`;

function toy(dir: string, view: { text: string; secret?: string }, log = 'toyd.log'): DaemonSpec {
  const pidFile = join(dir, 'run', 'toyd.pid');
  const config = join(dir, 'state', 'toyd.conf');
  return {
    name: 'toyd',
    argv: [findTool('sh'), join(dir, 'toyd.sh'), config, pidFile],
    recoverArgs: [],
    recover: false,
    config: { path: config, template: 'toy', view, mode: view.secret ? 0o600 : 0o644, secrets: view.secret ? [view.secret] : [] },
    validate: [findTool('grep'), '-q', '^ok', CONFIG_PATH_ARG],
    ready: [findTool('test'), '-s', pidFile],
    reload: { argv: [findTool('touch'), join(dir, 'reloaded')] },
    refresh: { argv: [findTool('touch'), join(dir, 'refreshed')] },
    gracefulStop: null,
    pidFile,
    logFile: join(dir, 'state', log),
    status: { argv: [findTool('cat'), join(dir, 'sessions.json')] },
  };
}

const session = (peer: string, established: boolean): PeerSession => ({
  name: `s_${peer}`, peer, peerAs: 65001, localAs: 64512, state: established ? 'Established' : 'Active', established,
  since: '2026-12-03T09:25:41+0000', sinceMs: 0, lastError: null, routes: { imported: 1, filtered: 0, exported: 1, preferred: 1 },
});

test('node daemons: start, reload only on change, refresh after node changes, restart when killed, stop when no longer declared', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-daemons-'));
  const pids: number[] = [];
  t.after(async () => {
    for (const pid of pids) await stopPid(pid, 1000);
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(join(dir, 'toyd.sh'), DAEMON);
  writeFileSync(join(dir, 'sessions.json'), JSON.stringify([session('198.18.0.12', true), session('198.18.0.13', false)]));
  const log = memoryLog();
  const d = new NodeDaemons({
    runner: new ProcessRunner(),
    log,
    render: (template, view) => `${(view as { text: string }).text}\n# ${template}\n`,
    sessions: (name, out) => (name === 'toyd' ? JSON.parse(out) as PeerSession[] : []),
    backoff: { initialMs: 50, maxMs: 200 },
  });
  const pid = () => d.supervisor('toyd')!.pid!;
  const conf = join(dir, 'state', 'toyd.conf');

  await d.sync([toy(dir, { text: 'ok 1', secret: 'S3cret' })], { nodeChanged: true });
  pids.push(pid());
  assert.ok(pidAlive(pid()), 'started');
  assert.equal(readFileSync(conf, 'utf8'), 'ok 1\n# toy\n');
  assert.equal(statSync(conf).mode & 0o777, 0o600, 'a configuration with a secret is private');
  assert.equal(existsSync(join(dir, 'refreshed')), false, 'a daemon started in this run needs no refresh');

  await d.sync([toy(dir, { text: 'ok 1', secret: 'S3cret' })], { nodeChanged: false });
  assert.equal(d.supervisor('toyd')!.reloads, 0, 'same text: no reload');
  await d.sync([toy(dir, { text: 'ok 1', secret: 'S3cret' })], { nodeChanged: true });
  assert.ok(existsSync(join(dir, 'refreshed')), 'the node changed: refreshed');
  await d.sync([toy(dir, { text: 'ok 2' })], { nodeChanged: false });
  assert.equal(d.supervisor('toyd')!.reloads, 1);
  assert.ok(existsSync(join(dir, 'reloaded')));
  assert.equal(statSync(conf).mode & 0o777, 0o644);

  await assert.rejects(d.sync([toy(dir, { text: 'not ok S3cret', secret: 'S3cret' })], { nodeChanged: false }), /toyd refused the new configuration/);
  assert.equal(readFileSync(conf, 'utf8'), 'ok 2\n# toy\n', 'a refused configuration never replaces the file');
  assert.ok(pidAlive(pid()), 'and the daemon runs on');

  const [st] = await d.status();
  assert.deepEqual([st!.name, st!.running, st!.reloads, st!.restarts], ['toyd', true, 1, 0]);
  assert.deepEqual(st!.sessions!.map((s) => [s.peer, s.established]), [['198.18.0.12', true], ['198.18.0.13', false]]);

  const first = pid();
  process.kill(first, 'SIGKILL');
  await waitFor(() => d.supervisor('toyd')!.restarts === 1 && d.supervisor('toyd')!.pid !== null, 5000, () => 'not restarted');
  pids.push(pid());
  assert.notEqual(pid(), first);

  // A changed command line (another log file) is a new instance.
  const before = pid();
  await d.sync([toy(dir, { text: 'ok 2' }, 'other.log')], { nodeChanged: false });
  pids.push(pid());
  assert.notEqual(pid(), before);
  assert.equal(pidAlive(before), false);

  const last = pid();
  await d.sync([], { nodeChanged: false });
  assert.equal(pidAlive(last), false, 'no longer declared: stopped');
  assert.deepEqual(d.names(), []);

  await d.sync([toy(dir, { text: 'ok 3' })], { nodeChanged: false });
  pids.push(pid());
  const running = pid();
  await d.stop('restart');
  assert.equal(pidAlive(running), false, 'stop ends it');
  await d.sync([toy(dir, { text: 'ok 4' })], { nodeChanged: false });
  assert.equal(d.supervisor('toyd')!.pid, null, 'nothing starts after stop');
  assert.ok(!log.lines.join('\n').includes('S3cret'), 'the secret is never logged');
});
