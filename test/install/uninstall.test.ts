// testcni uninstall on a fake node: the order (conflist, binary, node state), ownership checks
// (bridge MAC, binary marker or recorded hash, IPAM files), refusals, dry run, purge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { uninstall, fileContains, BINARY_MARKER, UninstallRefused, type UninstallRequest } from '../../install/uninstall.ts';
import { writeRecord } from '../../install/record.ts';
import { teardownsFor, NODE_TEARDOWNS } from '../../install/node-teardown.ts';
import { MODES } from '../../planner/registry.ts';
import { bridgeMac } from '../../planner/names.ts';
import type { Runner, RunResult } from '../../executor/runner.ts';
import type { AgentStatus } from '../../ipam/agent-protocol.ts';

const IP = '/sbin/ip';

/** A node whose `ip -j` answers come from a table; every other command is recorded and succeeds. */
class FakeNode implements Runner {
  spawned = 0;
  ran: string[] = [];
  queried: string[] = [];
  bridge: { ifname: string; address: string; kind: string; addrs: string[] } | null = null;
  routes: { dst: string; gateway: string; protocol: string }[] = [];

  async run(argv: string[]): Promise<RunResult> {
    this.spawned++;
    const cmd = argv.join(' ');
    let stdout = '';
    let exitCode = 0;
    if (argv.includes('-j')) this.queried.push(cmd);
    if (cmd.startsWith(`${IP} -j -d addr show dev `)) {
      const b = this.bridge;
      if (!b || !cmd.endsWith(` ${b.ifname}`)) exitCode = 1;
      else {
        stdout = JSON.stringify([{ ifname: b.ifname, address: b.address, linkinfo: { info_kind: b.kind },
          addr_info: b.addrs.map((a) => ({ family: 'inet', local: a.split('/')[0], prefixlen: Number(a.split('/')[1]) })) }]);
      }
    } else if (cmd.startsWith(`${IP} -j route show proto `)) {
      stdout = JSON.stringify(this.routes);
    } else this.ran.push(cmd);
    return { argv, exitCode, stdout, stderr: exitCode ? 'Device does not exist' : '', ms: 0, timedOut: false };
  }
}

interface Fixture {
  dir: string;
  req: UninstallRequest;
  node: FakeNode;
  conflist: string;
  binary: string;
  ipamDir: string;
  stateDir: string;
}

function fixture(t: { after: (fn: () => void) => void }, opts: { agentUp?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tcuninst-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'state');
  const ipamData = join(dir, 'ipam');
  const conf = { cniVersion: '1.1.0', name: 'net1', plugins: [
    { type: 'testcni', subnet: '10.244.0.0/16', bridge: 'tcbr0', stateDir, ipam: { type: 'cluster', agentSocket: join(dir, 'agent.sock'), dataDir: ipamData, block: '10.244.3.0/24' } },
    { type: 'portmap', capabilities: { portMappings: true } },
  ] };
  mkdirSync(join(dir, 'net.d'));
  mkdirSync(join(dir, 'bin'));
  const conflist = join(dir, 'net.d', '10-testcni.conflist');
  writeFileSync(conflist, JSON.stringify(conf));
  const binary = join(dir, 'bin', 'testcni');
  writeFileSync(binary, `ELF...${BINARY_MARKER} (host-gw)...`);
  writeFileSync(join(dir, 'bin', 'bridge'), 'the reference plugin');
  const node = new FakeNode();
  node.bridge = { ifname: 'tcbr0', address: bridgeMac('tcbr0', '10.244.3.1/24'), kind: 'bridge', addrs: ['10.244.3.1/24'] };
  node.routes = [{ dst: '10.244.7.0/24', gateway: '198.18.0.12', protocol: '151' }];
  const req: UninstallRequest = {
    binDir: join(dir, 'bin'), binName: 'testcni', confDir: join(dir, 'net.d'), confName: '10-testcni.conflist', stateDir,
    routeProtocol: 151, agentSocket: null, purgeState: false, force: false, dryRun: false,
  };
  const said: string[] = [];
  const deps = {
    runner: node, ip: IP, say: (l: string) => said.push(l),
    agentStatus: async (): Promise<AgentStatus> => {
      if (opts.agentUp) return { ready: true } as AgentStatus;
      throw new Error('node agent not reachable');
    },
  };
  return { f: { dir, req, node, conflist, binary, ipamDir: join(ipamData, 'net1'), stateDir } as Fixture, deps, said };
}

test('uninstall removes the conflist, then the binary, then the bridge and the tagged routes', async (t) => {
  const { f, deps } = fixture(t);
  const r = await uninstall(f.req, deps);
  assert.deepEqual(r.failed, []);
  assert.deepEqual(r.removed.slice(0, 4), [
    `remove ${f.conflist}`,
    `remove ${f.binary}`,
    'delete bridge tcbr0 (gateway 10.244.3.1/24)',
    'delete route 10.244.7.0/24 via 198.18.0.12 (proto 151)',
  ]);
  assert.deepEqual(f.node.ran, [`${IP} link del dev tcbr0`, `${IP} route del 10.244.7.0/24 via 198.18.0.12 proto 151`]);
  assert.equal(existsSync(f.conflist), false);
  assert.equal(existsSync(f.binary), false);
  assert.ok(existsSync(join(f.dir, 'bin', 'bridge')), 'other plugins in the bin dir stay');
});

test('a bridge of that name whose MAC is not the derived one is left alone', async (t) => {
  const { f, deps } = fixture(t);
  f.node.bridge!.address = '02:00:00:00:00:01';
  const r = await uninstall(f.req, deps);
  assert.ok(!f.node.ran.some((c) => c.includes('link del')), f.node.ran.join('\n'));
  assert.ok(r.kept.some((k) => k.startsWith('tcbr0: not testcni')), r.kept.join('\n'));
});

test('a binary that is not a testcni build is kept; a recorded hash also proves ownership', async (t) => {
  const { f, deps } = fixture(t);
  writeFileSync(f.binary, 'some other plugin called testcni');
  let r = await uninstall(f.req, deps);
  assert.ok(existsSync(f.binary));
  assert.ok(r.kept.some((k) => k.startsWith(`${f.binary}: not a testcni build`)));
  const { f: g, deps: d2 } = fixture(t);
  writeFileSync(g.binary, 'stripped build without the marker');
  writeRecord(g.stateDir, { version: 1, binary: { path: '/host/opt/cni/bin/testcni', sha256: createHash('sha256').update('stripped build without the marker').digest('hex') }, conflist: null, installedAt: '' });
  r = await uninstall(g.req, d2);
  assert.equal(existsSync(g.binary), false, 'removed on the strength of the recorded hash');
});

test('refuses while the agent answers or pods are attached, before touching anything; --force goes on', async (t) => {
  const { f, deps } = fixture(t, { agentUp: true });
  await assert.rejects(uninstall(f.req, deps), (e: Error) => e instanceof UninstallRefused && /node agent is still running/.test(e.message));
  assert.ok(existsSync(f.conflist) && existsSync(f.binary));
  assert.deepEqual(f.node.ran, []);

  const { f: g, deps: d2 } = fixture(t);
  mkdirSync(join(g.stateDir, 'journal', 'net1'), { recursive: true });
  writeFileSync(join(g.stateDir, 'journal', 'net1', 'abc@eth0.jsonl'), '{}\n');
  await assert.rejects(uninstall(g.req, d2), (e: Error) => /1 pod attachment\(s\) of net1 remain on this node \(abc\/eth0\).*--force/.test(e.message));
  assert.ok(existsSync(g.conflist));
  const r = await uninstall({ ...g.req, force: true }, d2);
  assert.equal(existsSync(g.conflist), false);
  assert.ok(r.removed.length >= 4);
});

test('--dry-run lists the removals and changes nothing', async (t) => {
  const { f, deps } = fixture(t);
  const r = await uninstall({ ...f.req, dryRun: true, purgeState: true }, deps);
  assert.ok(r.removed.every((l) => l.startsWith('would ')), r.removed.join('\n'));
  assert.ok(r.removed.includes('would delete bridge tcbr0 (gateway 10.244.3.1/24)'));
  assert.ok(existsSync(f.conflist) && existsSync(f.binary));
  assert.deepEqual(f.node.ran, []);
});

test('--purge-state removes only the network\'s own files, and keeps a dir holding anything else', async (t) => {
  const { f, deps } = fixture(t);
  mkdirSync(f.ipamDir, { recursive: true });
  for (const n of ['10.244.3.5', 'last_reserved_ip.0', 'lock']) writeFileSync(join(f.ipamDir, n), 'x');
  const other = join(f.ipamDir, '..', 'othernet');
  mkdirSync(other);
  writeFileSync(join(other, '10.9.0.2'), 'x');
  mkdirSync(join(f.stateDir, 'locks'), { recursive: true });
  writeFileSync(join(f.stateDir, 'locks', 'net1~abc@eth0.lock'), '');
  writeFileSync(join(f.stateDir, 'locks', 'othernet~abc@eth0.lock'), '');
  let r = await uninstall({ ...f.req, purgeState: true }, deps);
  assert.deepEqual(r.failed, []);
  assert.equal(existsSync(f.ipamDir), false);
  assert.ok(existsSync(join(other, '10.9.0.2')), 'another network\'s reservations stay');
  assert.deepEqual(readdirSync(join(f.stateDir, 'locks')), ['othernet~abc@eth0.lock']);

  const { f: g, deps: d2 } = fixture(t);
  mkdirSync(g.ipamDir, { recursive: true });
  writeFileSync(join(g.ipamDir, '10.244.3.5'), 'x');
  writeFileSync(join(g.ipamDir, 'notes.txt'), 'an operator\'s file');
  r = await uninstall({ ...g.req, purgeState: true }, d2);
  assert.ok(r.failed.some((l) => l.includes('holds files testcni did not make (notes.txt)')), r.failed.join('\n'));
  assert.ok(existsSync(join(g.ipamDir, '10.244.3.5')), 'nothing removed from a dir with foreign files');
});

test('without a conflist or record the network falls back to the defaults (bridge testcni0 checked by MAC)', async (t) => {
  const { f, deps, said } = fixture(t);
  rmSync(f.conflist);
  f.node.bridge = null;
  const r = await uninstall(f.req, deps);
  assert.ok(said.some((l) => l.includes('network testcni (mode host-gw) from the defaults')), said.join('\n'));
  assert.ok(f.node.queried.includes(`${IP} -j -d addr show dev testcni0`), 'the default bridge is the one looked at');
  assert.deepEqual(r.failed, []);
});

test('fileContains finds a marker across chunk boundaries', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcfc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const buf = Buffer.alloc((64 << 10) * 2, 0x20);
  const at = (64 << 10) - 5; // straddles the first 64 KiB read
  buf.write(BINARY_MARKER, at);
  writeFileSync(join(dir, 'f'), buf);
  assert.equal(await fileContains(join(dir, 'f'), BINARY_MARKER), true);
  writeFileSync(join(dir, 'g'), Buffer.alloc(200_000, 0x20));
  assert.equal(await fileContains(join(dir, 'g'), BINARY_MARKER), false);
});

test('node teardowns: one per mode, chosen by the network\'s mode', () => {
  assert.deepEqual(NODE_TEARDOWNS.map((t) => t.mode), MODES.all().filter((m) => m.node?.teardown).map((m) => m.name));
  assert.ok(NODE_TEARDOWNS.some((t) => t.mode === 'ipvlan'), 'ipvlan\'s anchors');
  assert.deepEqual(teardownsFor('ipip').map((t) => t.mode), ['ipip']);
  assert.deepEqual(teardownsFor('host-gw').map((t) => t.mode), ['host-gw']);
  assert.deepEqual(teardownsFor('macvlan'), [], 'macvlan leaves nothing on the node');
  assert.deepEqual(teardownsFor('no-such-mode'), []);
});

test('the BPF objects installed beside the binary go with it, when unchanged; the bpf/ dir once empty', async (t) => {
  const { f, deps } = fixture(t);
  mkdirSync(join(f.dir, 'bin', 'bpf'));
  const obj = (name: string, text: string) => {
    writeFileSync(join(f.dir, 'bin', 'bpf', name), text);
    return { path: `/host/opt/cni/bin/bpf/${name}`, sha256: createHash('sha256').update(text).digest('hex') };
  };
  const objects = [obj('vxlan.o', 'OBJ'), obj('other.o', 'OTHER')];
  writeRecord(f.stateDir, { version: 1, binary: null, objects, conflist: null, installedAt: '' });
  writeFileSync(join(f.dir, 'bin', 'bpf', 'other.o'), 'changed since');
  const r = await uninstall(f.req, deps);
  assert.ok(r.removed.includes(`remove ${join(f.dir, 'bin', 'bpf', 'vxlan.o')}`), r.removed.join('\n'));
  assert.deepEqual(readdirSync(join(f.dir, 'bin', 'bpf')), ['other.o'], 'a changed object is kept');
  assert.ok(r.kept.some((k) => k.endsWith('other.o: changed since it was installed, left alone')), r.kept.join('\n'));
});
