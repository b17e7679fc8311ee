// install and uninstall on a simulated node, with the single executable and no node on PATH:
// install waits for a real agent (on a real etcd) before it writes the conflist; a pod comes and
// goes through the installed binary and conflist; uninstall refuses while the agent runs, then
// removes the conflist, the binary, the bridge, the agent's routes and the network's files, and
// the node is as it was before the install (things testcni does not own included).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, mkdirSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { rootSkipReason, uniquePrefix, sh, inNetns, EXECUTABLE, NETNS_DIR, toolPath } from '../helpers/netns.ts';
import { Scope, cni, show, settledNodeState, podLink } from '../helpers/e2e.ts';
import { startEtcd, stopPid, etcdAvailable } from '../../lab/etcd.ts';
import { startDaemon } from '../../executor/runner.ts';
import { AgentStore } from '../../ipam/agent-store.ts';
import { readNetworkConfig } from '../../cli/config-file.ts';

const skip = rootSkipReason() ?? etcdAvailable() ?? (existsSync(EXECUTABLE) ? undefined : `needs the single executable at ${EXECUTABLE} (npm run build)`);
const PROTO = '151';

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null> | T | null): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('install waits for the agent, a pod works through what it installed, uninstall leaves the node as before', { skip, timeout: 120_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('in'));
  const node = scope.node();
  const nodeNs = join(NETNS_DIR, node.name);
  const dir = mkdtempSync(join(tmpdir(), `${scope.prefix}-inst-`));
  const pids: number[] = [];
  t.after(async () => {
    for (const pid of pids.reverse()) await stopPid(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  // The executable in a dir of its own, as the image would carry it; PATH holds nothing else.
  const image = join(dir, 'image');
  mkdirSync(image);
  const exe = join(image, 'testcni');
  copyFileSync(EXECUTABLE, exe);
  const env = { PATH: image };
  const inNode = (argv: string[]) => [toolPath('nsenter')!, `--net=${nodeNs}`, '--', ...argv];
  const paths = { bin: join(dir, 'opt-cni-bin'), conf: join(dir, 'etc-cni-net.d'), state: join(dir, 'var-lib-testcni'), ipam: join(dir, 'var-lib-cni'), sock: join(dir, 'run', 'agent.sock') };
  mkdirSync(paths.bin);
  writeFileSync(join(paths.bin, 'portmap'), 'another plugin');

  // The node's underlay, a foreign route with another protocol number and a foreign bridge:
  // all must survive uninstall.
  inNetns(node.name, ['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
  inNetns(node.name, ['ip', 'addr', 'add', '198.18.0.9/24', 'dev', 'eth0']);
  inNetns(node.name, ['ip', 'link', 'set', 'eth0', 'up']);
  inNetns(node.name, ['ip', 'link', 'set', 'peer0', 'up']);
  inNetns(node.name, ['ip', 'route', 'add', '10.99.0.0/24', 'via', '198.18.0.10', 'proto', '152']);
  inNetns(node.name, ['ip', 'link', 'add', 'other0', 'type', 'bridge']);
  const before = { node: settledNodeState(node.name), bin: readdirSync(paths.bin) };

  const conflistFile = join(dir, 'configmap-10-testcni.conflist');
  writeFileSync(conflistFile, JSON.stringify({ cniVersion: '1.1.0', name: `${scope.prefix}net`, plugins: [{
    type: 'testcni', subnet: '10.244.0.0/16', stateDir: paths.state,
    ipam: { type: 'cluster', agentSocket: paths.sock, dataDir: paths.ipam },
  }] }));
  const installArgs = ['install', '--conflist', conflistFile, '--bin-dir', paths.bin, '--conf-dir', paths.conf, '--state-dir', paths.state];
  const conflist = join(paths.conf, '10-testcni.conflist');

  // 1. No agent: the binary goes in, the conflist does not, and the error says why.
  const early = spawnSync(inNode([exe, ...installArgs, '--timeout', '1'])[0]!, inNode([exe, ...installArgs, '--timeout', '1']).slice(1), { env, encoding: 'utf8' });
  assert.equal(early.status, 1, early.stderr);
  assert.match(early.stderr, /did not report ready within 1 s \(last: node agent not reachable.*\); the conflist was not written/);
  assert.ok(existsSync(join(paths.bin, 'testcni')));
  assert.equal(existsSync(conflist), false);

  // 2. install started first, the agent once install is waiting for it: install finishes once
  // the agent is ready.
  let installErr = '';
  const installRun = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const argv = inNode([exe, ...installArgs, '--timeout', '60']);
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (b) => (installErr += b));
    child.on('close', (code) => resolve({ code, stderr: installErr }));
  });
  await until('install to wait for the agent', 30_000, () => (installErr.includes('waiting for the node agent') ? true : null));
  assert.equal(existsSync(conflist), false, 'no conflist while no agent answers');
  const etcdDir = join(dir, 'etcd');
  mkdirSync(etcdDir);
  const etcd = await startEtcd({ netns: nodeNs, host: '127.0.0.1', clientPort: 2379, peerPort: 2380, dir: etcdDir, onStart: (pid) => pids.push(pid) });
  const prefix = `/${scope.prefix}`;
  const agentPid = await startDaemon(inNode([exe, 'agent', '--node-name', 'n1', '--underlay-ip', '198.18.0.9', '--etcd-endpoints', etcd.endpoint,
    '--etcd-prefix', prefix, '--socket', paths.sock, '--state-dir', paths.state, '--metrics-address', 'off', '--lease-ttl', '5']), { logFile: join(dir, 'agent.log'), env });
  pids.push(agentPid);
  const inst = await installRun;
  assert.equal(inst.code, 0, `install: ${inst.stderr}\nagent log: ${readFileSync(join(dir, 'agent.log'), 'utf8').slice(-1500)}`);
  assert.match(inst.stderr, /node agent ready: node n1, block 10\.244\.\d+\.0\/24[\s\S]*wrote /);
  assert.equal(readFileSync(conflist, 'utf8'), readFileSync(conflistFile, 'utf8'));
  const status = await new AgentStore(paths.sock, 2000).agentStatus();
  assert.equal(status.ready, true);

  // Another node registers: the agent routes to its block (proto 151), as on a real cluster.
  sh(inNode([toolPath('etcdctl')!, '--endpoints', etcd.endpoint, 'put', `${prefix}/nodes/n2`, JSON.stringify({ name: 'n2', underlayIp: '198.18.0.10', block: '10.244.200.0/24' })]));
  const agentRoutes = () => JSON.parse(inNetns(node.name, ['ip', '-j', 'route', 'show', 'proto', PROTO]).stdout || '[]') as { dst: string }[];
  await until('the agent\'s route to n2', 15_000, () => (agentRoutes().some((r) => r.dst === '10.244.200.0/24') ? true : null));

  // 3. A pod through the installed binary and the installed conflist.
  const program = [join(paths.bin, 'testcni')];
  const config = readNetworkConfig(conflist, () => '');
  const pod = scope.pod('1');
  const add = cni(node, { command: 'ADD', containerId: `${scope.prefix}-1`, netns: pod.path, config, program, env: { PATH: paths.bin } });
  assert.equal(add.code, 0, `ADD: ${show(add)}`);
  const ip = String((add.json?.ips as { address: string }[])[0]!.address);
  assert.ok(ip.startsWith(status.block!.split('.').slice(0, 3).join('.') + '.'), `${ip} is in the node's block ${status.block}`);
  assert.ok(podLink(pod.name));
  const del = cni(node, { command: 'DEL', containerId: `${scope.prefix}-1`, netns: pod.path, config, program, env: { PATH: paths.bin } });
  assert.equal(del.code, 0, `DEL: ${show(del)}`);

  // 4. uninstall refuses while the agent runs, and changes nothing.
  const uninstallArgv = inNode([join(paths.bin, 'testcni'), 'uninstall', '--bin-dir', paths.bin, '--conf-dir', paths.conf, '--state-dir', paths.state, '--purge-state']);
  const refused = spawnSync(uninstallArgv[0]!, uninstallArgv.slice(1), { env, encoding: 'utf8' });
  assert.equal(refused.status, 1, refused.stderr);
  assert.match(refused.stderr, /node agent is still running/);
  assert.ok(existsSync(conflist) && existsSync(join(paths.bin, 'testcni')));

  // 5. Agent stopped (its routes stay in the kernel, as after a DaemonSet is deleted): uninstall
  // removes everything testcni made, and only that.
  await stopPid(agentPid);
  pids.splice(pids.indexOf(agentPid), 1);
  assert.ok(agentRoutes().length > 0, 'the stopped agent left its routes');
  const done = spawnSync(uninstallArgv[0]!, uninstallArgv.slice(1), { env, encoding: 'utf8' });
  assert.equal(done.status, 0, `${done.stdout}\n${done.stderr}`);
  assert.deepEqual(done.stdout.split('\n').filter((l) => l.startsWith('removed: ')).slice(0, 4), [
    `removed: remove ${conflist}`,
    `removed: remove ${join(paths.bin, 'testcni')}`,
    'removed: delete bridge testcni0 (gateway 10.244.' + status.block!.split('.')[2] + '.1/24)',
    'removed: delete route 10.244.200.0/24 via 198.18.0.10 (proto 151)',
  ], done.stdout);
  assert.deepEqual(readdirSync(paths.conf), []);
  assert.deepEqual(readdirSync(paths.bin), before.bin, 'the bin dir holds what it held before');
  assert.equal(existsSync(paths.state), false, 'the state dir is gone (it held only testcni\'s files)');
  assert.equal(existsSync(join(paths.ipam, `${scope.prefix}net`)), false, 'the network\'s IPAM dir is gone');
  assert.deepEqual(settledNodeState(node.name), before.node, 'links, addresses, routes (the foreign one kept) are as before the install');
});
