// Odd but possible inputs that must work (not merely fail cleanly): interface names `ip` could
// read as keywords, DEL without a journal and with an odd prevResult, an unusable log file, and
// stdin that cannot be read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, openSync, closeSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { rootSkipReason, uniquePrefix, treeSnapshot, pluginArgv, pluginEnv, sh, type TestNode } from '../helpers/netns.ts';
import { Scope, cni, show, settledNodeState, linkNames, podLink, reservations, journalFile } from '../helpers/e2e.ts';
import { hostVethName } from '../../planner/names.ts';
import { Code } from '../../model/errors.ts';

const skip = rootSkipReason(['mkfifo']) ?? undefined;

function warmUp(scope: Scope, node: TestNode, config: Record<string, unknown>): void {
  const pod = scope.pod('w');
  for (const command of ['ADD', 'DEL']) {
    const r = cni(node, { command, containerId: `${scope.prefix}-w`, netns: pod.path, config });
    assert.equal(r.code, 0, `warm-up ${command}: ${show(r)}`);
  }
}

test('interface names that `ip` knows as keywords work: ADD, CHECK, DEL, nothing left', { skip, timeout: 120_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('kw'));
  const node = scope.node();
  const config = node.config();
  warmUp(scope, node, config);
  const before = { node: settledNodeState(node.name), state: treeSnapshot(node.stateDir) };
  // Whole keywords and prefixes `ip` matches as keywords ("he" is "help").
  const names = ['help', 'he', 'h', 'dev', 'type', 'up', 'down', 'master', 'netns', 'name', 'link', 'peer', 'add', 'address', 'mtu', 'nomaster', '-j'];
  const pod = scope.pod('k');
  for (const ifName of names) {
    const cid = `${scope.prefix}-${Buffer.from(ifName).toString('hex')}`;
    const add = cni(node, { command: 'ADD', containerId: cid, netns: pod.path, ifName, config });
    assert.equal(add.code, 0, `ADD with ifName ${ifName}: ${show(add)}`);
    assert.ok(podLink(pod.name, ifName), `${ifName} exists in the pod`);
    const check = cni(node, { command: 'CHECK', containerId: cid, netns: pod.path, ifName, config: { ...config, prevResult: add.json } });
    assert.equal(check.code, 0, `CHECK ${ifName}: ${show(check)}`);
    const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, ifName, config });
    assert.equal(del.code, 0, `DEL ${ifName}: ${show(del)}`);
    assert.equal(podLink(pod.name, ifName), null, `${ifName} is gone`);
  }
  assert.deepEqual(settledNodeState(node.name), before.node, 'the node is as before');
  assert.deepEqual(treeSnapshot(node.stateDir), before.state, 'no journal or lock left');
});

test('DEL without a journal and with a prevResult listing IPv6 or garbage first removes the pod network and releases the address', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('dj'));
  const node = scope.node();
  const config = node.config({ ipMasq: true });
  const firsts: unknown[] = [
    { address: 'fd00::5/64', gateway: 'fd00::1' },
    { address: 'garbage' },
    { address: 42 },
    null,
  ];
  for (const [i, first] of firsts.entries()) {
    const pod = scope.pod(`d${i}`);
    const cid = `${scope.prefix}-d${i}`;
    const add = cni(node, { command: 'ADD', containerId: cid, netns: pod.path, config });
    assert.equal(add.code, 0, show(add));
    rmSync(journalFile(node, cid)); // the state dir was lost
    const prev = add.json as { ips: unknown[] };
    const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config: { ...config, prevResult: { ...prev, ips: [first, ...prev.ips] } } });
    assert.equal(del.code, 0, `DEL with ${JSON.stringify(first)} first: ${show(del)}`);
    assert.equal(podLink(pod.name), null, 'no eth0 left in the pod');
    assert.ok(!linkNames(node.name).includes(hostVethName(cid, 'eth0')), 'no host veth left');
    assert.ok(!Object.values(reservations(node)).includes(`${cid}/eth0`), 'the address is released');
    assert.ok(!sh(['iptables-save', '-t', 'nat'], { allowFail: true }).stdout.includes(cid), 'the masquerade rule is gone');
  }
});

test('an unusable logFile never fails a call: a directory, a FIFO nobody reads, a missing directory, /dev/full', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('lf'));
  const node = scope.node();
  const dir = join(node.dir, 'logdir');
  mkdirSync(dir);
  const fifo = join(node.dir, 'log.fifo');
  sh(['mkfifo', fifo]);
  const pod = scope.pod('l');
  for (const logFile of [dir, fifo, join(node.dir, 'missing', 'log'), '/dev/full']) {
    const config = node.config({ logFile });
    const cid = `${scope.prefix}-${Buffer.from(logFile).length}`;
    for (const command of ['ADD', 'DEL', 'DEL']) {
      const r = cni(node, { command, containerId: cid, netns: pod.path, config });
      assert.equal(r.code, 0, `${command} with logFile ${logFile}: ${show(r)}`);
      assert.match(r.stderr, /log file unusable/, 'stderr says why the file has no log');
    }
    const status = cni(node, { command: 'STATUS', config });
    assert.equal(status.code, 0, `STATUS with logFile ${logFile}: ${show(status)}`);
  }
});

test('stdin that cannot be read (a directory) is code 5, not 999', { skip, timeout: 30_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('sd'));
  const node = scope.node();
  const pod = scope.pod('s');
  for (const command of ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS']) {
    const fd = openSync(node.dir, 'r');
    const argv = pluginArgv(node.name);
    const r = spawnSync(argv[0]!, argv.slice(1), {
      stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8',
      env: pluginEnv({ command, containerId: `${scope.prefix}-s`, netns: pod.path, config: null, nodeNs: node.name }),
    });
    closeSync(fd);
    assert.equal(r.status, 1, `${command}: ${r.stdout} ${r.stderr}`);
    const doc = JSON.parse(r.stdout) as { code: number };
    assert.equal(doc.code, Code.IoFailure, `${command}: ${r.stdout}`);
    assert.equal(r.stdout.trimEnd().split('\n').length, 1);
  }
});
