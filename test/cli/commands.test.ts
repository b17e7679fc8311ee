// The operator commands through the built binary: plan --dry-run (no root, changes nothing),
// version, help, status and gc.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { PLUGIN, rootSkipReason, uniquePrefix, addNetns, delNetns, NETNS_DIR } from '../helpers/netns.ts';
import { JournalStore, newJournal } from '../../executor/journal.ts';
import { compile } from '../../planner/compile.ts';
import { loadConfig } from '../../cni/config.ts';
import { MODES } from '../../planner/registry.ts';
import { FAKE_FACTS } from '../helpers/fake-node.ts';

const ORIGINAL = { cniVersion: '0.3.0', name: 'testcni', type: 'testcni', bridge: 'testcni0', subnet: '10.244.0.0/16' };

function cli(args: string[], input = '', argv0: string[] = [process.execPath, PLUGIN]) {
  const r = spawnSync(argv0[0]!, [...argv0.slice(1), ...args], { input, encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tempDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'tcx-cli-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const built = existsSync(PLUGIN) ? false : `needs the built plugin at ${PLUGIN}`;

test('plan --dry-run prints a readable plan for the original host-gw config and changes nothing', { skip: built }, (t) => {
  const d = tempDir(t);
  const cfg = { ...ORIGINAL, stateDir: join(d, 'state'), ipam: { dataDir: join(d, 'ipam') } };
  const r = cli(['plan', '--dry-run', '--netns', '/var/run/netns/cni-1', '--container-id', 'abc'], JSON.stringify(cfg));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^testcni ADD eth0 in \/var\/run\/netns\/cni-1/);
  assert.match(r.stdout, /ensure bridge testcni0/);
  assert.match(r.stdout, /Plan: \d+ steps to apply/);
  assert.match(r.stdout, /Result: 10\.244\.0\.2\/32 via 10\.244\.0\.1 on eth0/);
  assert.deepEqual(readdirSync(d), [], 'no state or IPAM directory was created');
});

test('plan --dry-run formats: json is the plan, sh a script; DEL and CHECK plans too', { skip: built }, () => {
  const json = cli(['plan', '--dry-run', '--format', 'json', '--config', '-'], JSON.stringify(ORIGINAL));
  assert.equal(json.code, 0, json.stderr);
  const plan = JSON.parse(json.stdout);
  assert.equal(plan.command, 'ADD');
  const ids = (plan.steps as { id: string }[]).map((s) => s.id);
  for (const id of ['link.veth:pod:eth0', 'addr:pod:eth0', 'route:pod:default', 'link.bridge:host:testcni0', 'sysctl:host:net.ipv4.conf.testcni0.forwarding']) assert.ok(ids.includes(id), id);
  assert.ok(ids.at(-1)!.startsWith('link.wait:host:tc'), 'ADD ends waiting for the links it made');
  const sh = cli(['plan', '--dry-run', '--format', 'sh', '--ip', '10.244.0.9'], JSON.stringify(ORIGINAL));
  assert.match(sh.stdout, /^#!\/bin\/sh\n/);
  assert.match(sh.stdout, /ip addr add 10\.244\.0\.9\/32 dev eth0/);
  assert.match(sh.stdout, /until \S*ip -o link show dev tc[0-9a-f]{11} \| grep -q 'state UP'/, 'the wait as a polling loop');
  assert.match(sh.stdout, /netns "\$\$"/, 'the node namespace is the script\'s own');
  const del = cli(['plan', '--dry-run', '--command', 'DEL'], JSON.stringify(ORIGINAL));
  assert.match(del.stdout, /^testcni DEL/);
  assert.match(del.stdout, /ip link del tc[0-9a-f]{11}/);
  const check = cli(['plan', '--dry-run', '--command', 'check'], JSON.stringify(ORIGINAL));
  assert.match(check.stdout, /probes? to verify/);
});

test('plan refuses without --dry-run, bad formats and bad configs, with a message', { skip: built }, () => {
  assert.equal(cli(['plan'], JSON.stringify(ORIGINAL)).code, 2);
  const fmt = cli(['plan', '--dry-run', '--format', 'yaml'], JSON.stringify(ORIGINAL));
  assert.equal(fmt.code, 1);
  assert.match(fmt.stderr, /--format must be text, sh or json/);
  const bad = cli(['plan', '--dry-run'], JSON.stringify({ ...ORIGINAL, subnet: '10.244.0.0/33' }));
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /subnet/);
});

test('version and help', { skip: built }, () => {
  const v = cli(['version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /CNI spec 1\.1\.0 \(supports 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0\)/);
  for (const cmd of [['--help'], ['plan', '--help'], ['status', '--help'], ['gc', '--help'], ['agent', '--help'], ['lab', '--help']]) {
    const r = cli(cmd);
    assert.equal(r.code, 0, `${cmd.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /usage: testcni/, cmd.join(' '));
  }
  const unknown = cli(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command/);
});

test('status reports readiness, usage and attachments (--json too)', { skip: built }, (t) => {
  const d = tempDir(t);
  const cfgFile = join(d, 'net.conf');
  writeFileSync(cfgFile, JSON.stringify({ ...ORIGINAL, cniVersion: '1.1.0', stateDir: join(d, 'state'), ipam: { dataDir: join(d, 'ipam'), rangeStart: '10.244.0.10', rangeEnd: '10.244.0.11' } }));
  const r = cli(['status', '--config', cfgFile]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /ready\s+yes/);
  assert.match(r.stdout, /0 used, 2 free/);
  mkdirSync(join(d, 'ipam', 'testcni'), { recursive: true });
  for (const ip of ['10.244.0.10', '10.244.0.11']) writeFileSync(join(d, 'ipam', 'testcni', ip), `c-${ip}\r\neth0`);
  const full = cli(['status', '--config', cfgFile, '--json']);
  assert.equal(full.code, 1, 'an exhausted pool is not ready');
  const report = JSON.parse(full.stdout);
  assert.equal(report.ready, false);
  assert.match(report.problems.join(' '), /exhausted/);
  assert.deepEqual(report.ipam, { used: 2, free: 0 });
});

const rootSkip = built || rootSkipReason() || false;

test('gc removes attachments whose netns is gone and keeps live ones', { skip: rootSkip }, (t) => {
  const d = tempDir(t);
  const prefix = uniquePrefix('gc');
  const node = `${prefix}n`;
  const live = `${prefix}p`;
  addNetns(node);
  addNetns(live);
  t.after(() => {
    delNetns(live);
    delNetns(node);
  });
  const raw = { ...ORIGINAL, cniVersion: '1.1.0', name: 'gcnet', stateDir: join(d, 'state'), ipam: { dataDir: join(d, 'ipam') } };
  const cfgFile = join(d, 'net.conf');
  writeFileSync(cfgFile, JSON.stringify(raw));
  const { config } = loadConfig(raw);
  const journals = new JournalStore(config.stateDir);
  mkdirSync(join(d, 'ipam', 'gcnet'), { recursive: true });
  // Two recorded attachments: one whose pod netns exists, one whose netns is gone.
  for (const [cid, netns, ip] of [['alive', join(NETNS_DIR, live), '10.244.0.2'], ['gone', join(NETNS_DIR, `${prefix}x`), '10.244.0.3']] as const) {
    const lease = { address: `${ip}/24`, gateway: '10.244.0.1' };
    const plan = compile({ command: 'ADD', config, containerId: cid, ifName: 'eth0', netns, lease, facts: FAKE_FACTS }, MODES.require(config.mode));
    const j = newJournal(plan, lease);
    j.state = 'applied';
    for (const id of Object.keys(j.steps)) j.steps[id] = { status: 'applied' };
    journals.write(j);
    writeFileSync(join(d, 'ipam', 'gcnet', ip), `${cid}\r\neth0`);
  }
  const r = cli(['gc', '--config', cfgFile, '--grace', '0'], '', ['nsenter', `--net=${join(NETNS_DIR, node)}`, '--', process.execPath, PLUGIN]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /removed 1 attachment\(s\): gone\/eth0/);
  assert.deepEqual(journals.list('gcnet').map((a) => a.containerId), ['alive']);
  assert.deepEqual(readdirSync(join(d, 'ipam', 'gcnet')).sort(), ['10.244.0.2']);
});
