// `testcni install` then `testcni uninstall` on a simulated node of each mode this kernel can
// carry (file IPAM, no agent: its part is test/e2e/install.test.ts), with pods in between:
// uninstall removes the mode's node state with the mode's own teardown (host-gw: the bridge;
// macvlan: nothing was left; vxlan: its device and its pins in bpffs), keeps what is not testcni's, and the node is as before the install.
// ipip (never), whose node state the agent and its BIRD make, on the lab. ipvlan's teardown runs
// on a kernel with ipvlan in test/e2e/vm-teardown.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { rootSkipReason, uniquePrefix, inNetns, NETNS_DIR, PLUGIN, EXECUTABLE, toolPath } from '../helpers/netns.ts';
import { Scope, cni, show, settledNodeState } from '../helpers/e2e.ts';
import { toConflist } from '../helpers/conflist.ts';
import { modeNode, modeKernelSkipReason } from '../helpers/mode-nodes.ts';
import { labSkipReason, testLab } from '../helpers/lab.ts';
import { BPFFS } from '../helpers/bpf.ts';
import { bgpSkipReason, waitFor } from '../helpers/bgp.ts';
import { stopAgent } from '../../lab/agents.ts';
import type { LabNode } from '../../lab/state.ts';

const skip = rootSkipReason() ?? (existsSync(EXECUTABLE) ? undefined : `needs the single executable at ${EXECUTABLE} (npm run build)`);

/** What each mode's uninstall reports removing, beyond the conflist and the executable. */
const REMOVED: Record<string, RegExp[]> = {
  'host-gw': [/^removed: delete bridge testcni0 \(gateway 10\.244\.0\.1\/24\)$/],
  macvlan: [],
  vxlan: [
    /^removed: delete VXLAN device testcni\.vxlan \(its route and filters go with it\)$/,
    /^removed: remove this node's BPF maps and programs \(.*\/testcni\/[^/]+\/[^/]+\)$/,
    /^removed: remove .* and its parent if no other node or network pins there$/,
  ],
};

for (const mode of ['host-gw', 'macvlan', 'ipvlan', 'vxlan']) {
  test(`install, pods, uninstall on a ${mode} node: the node as before, foreign state kept`, { skip: skip ?? modeKernelSkipReason(mode) ?? undefined, timeout: 60_000 }, (t) => {
    const scope = new Scope(t, uniquePrefix('um'));
    const m = modeNode(scope, mode);
    const { node } = m;
    const run = (args: string[]) => spawnSync(toolPath('nsenter')!, [`--net=${join(NETNS_DIR, node.name)}`, '--', process.execPath, PLUGIN, ...args], { encoding: 'utf8' });
    // foreign state uninstall must not touch: a bridge and a route of another protocol
    inNetns(node.name, ['ip', 'link', 'add', 'other0', 'type', 'bridge']);
    inNetns(node.name, ['ip', 'route', 'add', '10.99.0.0/24', 'via', '198.18.0.1', 'proto', '152']);
    inNetns(node.name, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    const before = settledNodeState(node.name);
    const paths = { bin: join(node.dir, 'opt-cni-bin'), conf: join(node.dir, 'etc-cni-net.d') };
    mkdirSync(paths.bin);
    writeFileSync(join(paths.bin, 'portmap'), 'another plugin');
    const conflistFile = join(node.dir, 'testcni.conflist');
    writeFileSync(conflistFile, JSON.stringify(toConflist(m.config({ cniVersion: '1.0.0' }))));

    const inst = run(['install', '--conflist', conflistFile, '--source', EXECUTABLE, '--bin-dir', paths.bin, '--conf-dir', paths.conf, '--state-dir', node.stateDir, '--no-wait']);
    assert.equal(inst.status, 0, inst.stderr);
    const config = m.config();
    for (const n of ['1', '2']) {
      const add = cni(node, { command: 'ADD', containerId: `${scope.prefix}-${n}`, netns: scope.pod(n).path, config });
      assert.equal(add.code, 0, show(add));
    }
    // pods attached: refused, nothing changed
    const refused = run(['uninstall', '--bin-dir', paths.bin, '--conf-dir', paths.conf, '--state-dir', node.stateDir]);
    assert.equal(refused.status, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /2 pod attachment\(s\) .* remain on this node/);
    assert.ok(existsSync(join(paths.conf, '10-testcni.conflist')));
    for (const n of ['1', '2']) {
      const del = cni(node, { command: 'DEL', containerId: `${scope.prefix}-${n}`, netns: join(NETNS_DIR, `${scope.prefix}p${n}`), config });
      assert.equal(del.code, 0, show(del));
    }

    const dry = run(['uninstall', '--dry-run', '--bin-dir', paths.bin, '--conf-dir', paths.conf, '--state-dir', node.stateDir]);
    assert.equal(dry.status, 0, dry.stderr);
    assert.ok(existsSync(join(paths.conf, '10-testcni.conflist')), 'a dry run removes nothing');
    const done = run(['uninstall', '--purge-state', '--bin-dir', paths.bin, '--conf-dir', paths.conf, '--state-dir', node.stateDir]);
    assert.equal(done.status, 0, done.stdout + done.stderr);
    const removed = done.stdout.split('\n').filter((l) => l.startsWith('removed: '));
    const modeRemovals = removed.filter((l) => !l.includes(node.dir)); // not files: node state
    t.diagnostic(removed.join('; '));
    assert.equal(modeRemovals.length, REMOVED[mode]!.length, `${mode}'s node state removals: ${modeRemovals.join('; ')}`);
    REMOVED[mode]!.forEach((re, i) => assert.match(modeRemovals[i]!, re));
    assert.deepEqual(readdirSync(paths.conf), []);
    assert.deepEqual(readdirSync(paths.bin), ['portmap'], 'only the other plugin is left');
    assert.equal(existsSync(node.stateDir), false, 'the state dir held only testcni\'s files');
    inNetns(node.name, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    assert.deepEqual(settledNodeState(node.name), before, 'links, addresses, routes (the foreign ones kept) as before the install');
    if (mode === 'vxlan') assert.equal(existsSync(join(BPFFS, 'testcni', String(config.name))), false, 'the network\'s pins (maps, programs) are gone from bpffs');
  });
}

// ipip with ipipMode never (this kernel has no IPIP device) on the lab: two nodes, agents, etcd,
// a BIRD per node. n1's agent is killed, as an OOM kill would, so its BIRD keeps running; uninstall
// on n1 stops that BIRD through its control socket, then removes the blackhole of n1's block, the
// routes BIRD left (persist) and BIRD's files, and nothing else.
test('ipip (never) on the lab: uninstall after the agent was killed stops its BIRD, then removes the routes and files it left', { skip: labSkipReason() ?? bgpSkipReason(), timeout: 120_000 }, async (t) => {
  const lab = testLab('ui', 'ipip', { 'ipip-mode': 'never' });
  t.after(() => lab.down());
  const up = await lab.up(2, 0);
  const rec = up.record;
  const [n1, n2] = rec.state.nodes as [LabNode, LabNode];
  const block1 = up.statuses.get(n1.name)!.block!;
  const block2 = up.statuses.get(n2.name)!.block!;
  const routes = (...filter: string[]) => JSON.parse(inNetns(n1.netns, ['ip', '-j', 'route', 'show', ...filter]).stdout || '[]') as { dst: string; type?: string }[];
  const birdAnswers = () => inNetns(n1.netns, ['birdc', '-s', join(dirname(n1.socket), 'bird.ctl'), 'show', 'status'], { allowFail: true }).code === 0;
  await waitFor(() => routes('proto', 'bird').some((r) => r.dst === block2), 20_000, () => 'n1 to learn n2\'s block from BIRD');
  assert.ok(routes('type', 'blackhole').some((r) => r.dst === block1), 'the agent\'s blackhole of n1\'s block');
  // IPv4 addresses: the underlay's IPv6 link-local one may still be tentative (DAD) at the snapshot
  const underlay = { addr: inNetns(n1.netns, ['ip', '-j', '-4', 'addr', 'show']).stdout, other: routes().filter((r) => r.dst !== block2 && r.dst !== block1) };

  await stopAgent(rec, n1, 'SIGKILL');
  assert.ok(birdAnswers(), 'the killed agent\'s BIRD still runs');
  const bin = join(n1.dir, 'empty-bin');
  mkdirSync(bin);
  const r = spawnSync(toolPath('nsenter')!, [`--net=${join(NETNS_DIR, n1.netns)}`, '--', process.execPath, PLUGIN, 'uninstall',
    '--bin-dir', bin, '--conf-dir', n1.confDir, '--state-dir', n1.stateDir, '--route-protocol', String(rec.state.routeProtocol)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const removed = r.stdout.split('\n').filter((l) => l.startsWith('removed: ')).map((l) => l.slice('removed: '.length));
  t.diagnostic(removed.join('; '));
  assert.match(removed[1] ?? '', /^stop the BIRD still answering on .*bird\.ctl/, 'BIRD is stopped right after the conflist, before its routes go');
  assert.ok(removed.includes(`delete blackhole ${block1} (proto ${rec.state.routeProtocol}: this node's block)`), removed.join('\n'));
  assert.ok(removed.some((l) => l.startsWith(`delete route ${block2} `)), removed.join('\n'));
  assert.ok(removed.some((l) => l.startsWith('remove BIRD\'s config')), removed.join('\n'));

  await waitFor(() => !birdAnswers(), 5000, () => 'BIRD to be gone');
  assert.deepEqual(routes('proto', 'bird'), [], 'no route of BIRD\'s left');
  assert.deepEqual(routes('type', 'blackhole'), [], 'no blackhole left');
  assert.ok(!existsSync(join(n1.stateDir, 'bird', 'bird.conf')), 'BIRD\'s config is gone');
  assert.ok(!existsSync(join(dirname(n1.socket), 'bird.pid')), 'and its PID file');
  assert.equal(inNetns(n1.netns, ['ip', '-j', '-4', 'addr', 'show']).stdout, underlay.addr, 'n1\'s addresses as they were');
  assert.deepEqual(routes(), underlay.other, 'n1\'s other routes as they were');
});
