// `testcni lab` as an operator runs it (the built binary): `down` removes a lab whose `up` was
// killed half-way, from lab.json alone; a second `down` has nothing to do; `up` works again
// afterwards; and the errors an operator can hit are clear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PLUGIN, sh } from '../helpers/netns.ts';
import { labSkipReason, testLab } from '../helpers/lab.ts';
import { readLabState, type LabState } from '../../lab/state.ts';
import { pidAlive } from '../../lab/etcd.ts';
import { waitUntil } from '../../lab/sys.ts';

const skip = labSkipReason();
const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

function labNetns(name: string): string[] {
  return sh(['ip', 'netns', 'list']).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`${name}-`));
}

function pidsOf(s: LabState): number[] {
  return [s.etcd?.pid ?? null, ...s.nodes.map((n) => n.agentPid)].filter((p): p is number => p !== null);
}

test('lab down removes a lab whose up was killed mid-way; up works again after it', { skip, timeout: 120_000 }, async (t) => {
  const lab = testLab('lc');
  t.after(() => lab.down());
  const cli = (...args: string[]) => spawnSync(process.execPath, [PLUGIN, 'lab', ...args, '--name', lab.name, '--dir', lab.dir], { encoding: 'utf8', env });

  // Kill `up` (SIGKILL: no chance to clean up) while its pods are being attached.
  const up = spawn(process.execPath, [PLUGIN, 'lab', 'up', '--nodes', '2', '--pods', '3', '--name', lab.name, '--dir', lab.dir], { env, stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => up.on('exit', (code) => r(code)));
  const seen = await waitUntil(async () => {
    const s = existsSync(lab.dir) ? readLabState(lab.dir) : null;
    return s && s.pods.some((p) => p.state === 'creating') ? s : null;
  }, 60_000, () => 'up never reached its pods', 5);
  up.kill('SIGKILL');
  assert.equal(await exited, null, 'up was killed, it did not finish');
  const crashed = readLabState(lab.dir)!;
  assert.equal(crashed.phase, 'creating', 'the lab was half-built');
  assert.ok(seen.pods.length > 0);
  const pids = pidsOf(crashed);
  assert.equal(pids.length, 3, 'etcd and two agents were started');
  assert.ok(pids.every(pidAlive), 'they outlive the killed up');
  assert.ok(labNetns(lab.name).length >= 3, `namespaces left: ${labNetns(lab.name)}`);

  const down = cli('down');
  assert.equal(down.status, 0, down.stdout + down.stderr);
  assert.deepEqual(labNetns(lab.name), [], 'every namespace of the lab is gone');
  assert.deepEqual(pids.filter(pidAlive), [], 'etcd and the agents are gone');
  assert.equal(existsSync(lab.dir), false, 'the lab dir is gone');
  const again = cli('down');
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /nothing to do/);

  // Nothing of the first lab is in the way of a new one with the same name and dir.
  const up2 = cli('up', '--nodes', '2', '--pods', '1');
  assert.equal(up2.status, 0, up2.stdout + up2.stderr);
  assert.match(up2.stdout, /is up in \d+ ms/);
  const refused = cli('up', '--nodes', '1', '--pods', '1');
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /a lab exists in .* already/);
  const check = cli('check');
  assert.equal(check.status, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /all 2 pairs reachable/);
  const later = readLabState(lab.dir)!;
  assert.equal(cli('down').status, 0);
  assert.deepEqual(labNetns(lab.name), []);
  assert.deepEqual(pidsOf(later).filter(pidAlive), []);
});

const run = (...args: string[]) => spawnSync(process.execPath, [PLUGIN, 'lab', ...args], { encoding: 'utf8', env });

test('lab commands explain themselves; usage errors exit 2', { skip: existsSync(PLUGIN) ? false : `needs the built plugin at ${PLUGIN} (npm run build)` }, () => {
  for (const sub of ['up', 'check', 'status', 'down']) {
    const h = run(sub, '--help');
    assert.equal(h.status, 0, h.stderr);
    assert.match(h.stdout, new RegExp(`^usage: testcni lab ${sub}`));
  }
  assert.match(run('--help').stdout, /^usage: testcni lab <command>/);
  assert.equal(run('frobnicate').status, 2);
  const badFlag = run('up', '--bogus');
  assert.equal(badFlag.status, 2);
  assert.match(badFlag.stderr, /bogus/);
  const missing = run('status', '--name', 'tcnolab', '--dir', '/tmp/tcnolab-does-not-exist');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no lab tcnolab/);
});

test('lab up refuses bad input before making anything', { skip }, () => {
  const dir = '/tmp/tcnolab-does-not-exist';
  for (const [args, why] of [
    [['--nodes', '0'], /--nodes must be 1\.\.200/],
    [['--pods', 'x'], /--pods must be a whole number/],
    [['--mode', 'flannel'], /mode flannel is not one of host-gw/],
    [['--name', 'Bad_Name'], /lab name "Bad_Name"/],
  ] as const) {
    const r = run('up', ...args, '--dir', dir);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, why);
    assert.equal(existsSync(dir), false, 'a refused up makes nothing');
  }
});
