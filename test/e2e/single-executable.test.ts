// The single executable (dist/testcni) as a runtime finds it in /opt/cni/bin on a node without
// Node: a copy in a directory of its own, run with a PATH that holds no `node`. ADD then DEL
// leave the node as it was; the operator commands it carries as assets answer too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { rootSkipReason, uniquePrefix, treeSnapshot, EXECUTABLE, PLUGIN, type TestNode } from '../helpers/netns.ts';
import { Scope, cni, show, settledNodeState, podLink } from '../helpers/e2e.ts';

const skip = rootSkipReason() ?? (existsSync(EXECUTABLE) ? undefined : `needs the single executable at ${EXECUTABLE} (npm run build)`);

/** A bin dir holding only the executable, as /opt/cni/bin would; the PATH is that dir alone. */
function isolatedCopy(scope: Scope): { exe: string; env: Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), `${scope.prefix}-bin-`));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  const exe = join(dir, 'testcni');
  copyFileSync(EXECUTABLE, exe);
  assert.deepEqual(readdirSync(dir), ['testcni'], 'the bin dir holds the executable and nothing else');
  return { exe, env: { PATH: dir } };
}

function snapshot(node: TestNode) {
  return { node: settledNodeState(node.name), state: treeSnapshot(node.stateDir) };
}

test('the single executable runs ADD and DEL with no node on PATH and leaves the node identical', { skip, timeout: 60_000 }, (t) => {
  const scope = new Scope(t, uniquePrefix('se'));
  const { exe, env } = isolatedCopy(scope);
  const node = scope.node();

  // The control: with this PATH the bundle cannot start at all (its #! line asks env for node).
  const bundle = spawnSync(PLUGIN, [], { env: { ...env, CNI_COMMAND: 'VERSION' }, input: '{}', encoding: 'utf8' });
  assert.equal(bundle.status, 127, `the bundle finds no node on this PATH: ${bundle.stderr}`);

  const program = [exe];
  const call = (command: string, containerId: string, netns: string) =>
    cni(node, { command, containerId, netns, program, env: { PATH: env.PATH } });

  // Warm-up pair: the bridge and other node-scope objects ADD ensures once and DEL keeps.
  const warm = scope.pod('w');
  assert.equal(call('ADD', `${scope.prefix}-w`, warm.path).code, 0);
  assert.equal(call('DEL', `${scope.prefix}-w`, warm.path).code, 0);
  const before = snapshot(node);

  const pod = scope.pod('1');
  const cid = `${scope.prefix}-1`;
  const add = call('ADD', cid, pod.path);
  assert.equal(add.code, 0, `ADD: ${show(add)}`);
  const ip = String((add.json?.ips as { address: string }[])[0]!.address);
  const eth0 = podLink(pod.name);
  assert.ok(eth0, 'the pod has eth0');
  assert.deepEqual(eth0.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), [ip], 'the pod has the reported address');

  const del = call('DEL', cid, pod.path);
  assert.equal(del.code, 0, `DEL: ${show(del)}`);
  assert.equal(podLink(pod.name), null, 'eth0 is gone');
  const after = snapshot(node);
  assert.deepEqual(after.node, before.node, 'links, addresses, routes, neighbours and iptables are as before');
  assert.deepEqual(after.state, before.state, 'the state dir is as before');
});

test('the single executable carries the operator commands and the agent', { skip, timeout: 30_000 }, (t) => {
  const scope = new Scope(t, uniquePrefix('sa'));
  const { exe, env } = isolatedCopy(scope);
  const run = (args: string[], input = '') => spawnSync(exe, args, { env, input, encoding: 'utf8' });

  const version = run(['version']);
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout, /^testcni \d+\.\d+\.\d+\nCNI spec 1\.1\.0/);

  const config = { cniVersion: '1.1.0', name: 'sea', type: 'testcni', subnet: '10.244.0.0/16' };
  const plan = run(['plan', '--dry-run', '--config', '-', '--format', 'json', '--ip', '10.244.0.7'], JSON.stringify(config));
  assert.equal(plan.status, 0, plan.stderr);
  const parsed = JSON.parse(plan.stdout) as { command: string; steps: { id: string }[] };
  assert.equal(parsed.command, 'ADD');
  assert.ok(parsed.steps.some((s) => s.id.startsWith('link.bridge:host:')), 'the plan ensures the bridge');

  // The agent bundle (etcd3 and its protocol descriptors included) loads and parses its flags.
  const agent = run(['agent', '--etcd-endpoints', 'http://198.18.0.1:1', '--bogus']);
  assert.equal(agent.status, 2, agent.stderr);
  assert.match(agent.stderr, /Unknown option '--bogus'.*testcni agent --help/);
});
