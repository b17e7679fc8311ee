// The verbs end to end through handleCni, on a fake node: nothing on the machine is touched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { handleCni } from '../../cni/main.ts';
import { Logger } from '../../lib/log.ts';
import { hostVethName } from '../../planner/names.ts';
import { JournalStore } from '../../executor/journal.ts';
import { withAttachmentLock } from '../../cni/verbs/context.ts';
import { FakeRunner, FakeSystem } from '../helpers/fake-node.ts';
import { apiServer, listenUnix, ApiFailure, type AgentHandlers } from '../../agent/api.ts';
import { AgentMetrics } from '../../agent/metrics.ts';

function setup(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-verbs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const netns = join(dir, 'netns'); // a stand-in path: ADD checks the type of a real netns, DEL does not
  writeFileSync(netns, '');
  const config = { cniVersion: '1.1.0', name: 'net', type: 'testcni', subnet: '10.244.0.0/16', stateDir: join(dir, 'state'), ipam: { dataDir: join(dir, 'ipam') } };
  const call = (command: string, sys: FakeSystem, runner: FakeRunner, extra: Record<string, string> = {}) =>
    handleCni({ CNI_COMMAND: command, CNI_CONTAINERID: 'c1', CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...extra },
      () => JSON.stringify(config), { log: new Logger('error'), runner, sys });
  return { dir, netns, config, call };
}

const quietStderr = (t: { after: (fn: () => void) => void }) => {
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write;
  t.after(() => { process.stderr.write = write; });
};

test('DEL with an unreadable journal tears down by derived names, then removes it', async (t) => {
  quietStderr(t);
  const { dir, call } = setup(t);
  const host = hostVethName('c1', 'eth0');
  const journalDir = join(dir, 'state', 'journal', 'net');
  mkdirSync(journalDir, { recursive: true });
  writeFileSync(join(journalDir, 'c1@eth0.jsonl'), ''); // what a power cut can leave
  mkdirSync(join(dir, 'ipam', 'net'), { recursive: true });
  writeFileSync(join(dir, 'ipam', 'net', '10.244.0.9'), 'c1\r\neth0');
  const runner = new FakeRunner();
  const out = await call('DEL', new FakeSystem(['lo', 'testcni0', host]), runner);
  assert.equal(out.exitCode, 0, JSON.stringify(out.doc));
  assert.equal(out.doc, undefined, 'DEL prints nothing');
  assert.ok(runner.batchLines().includes(`link del ${host}`), 'the derived host veth is deleted');
  assert.deepEqual(readdirSync(journalDir), [], 'the unreadable journal is gone');
  assert.equal(existsSync(join(dir, 'ipam', 'net', '10.244.0.9')), false, 'the address is released');
});

test('ADD refuses an attachment whose journal is unreadable (code 103), and CHECK reports it (105)', async (t) => {
  quietStderr(t);
  const { dir, call, config } = setup(t);
  const journalDir = join(dir, 'state', 'journal', 'net');
  mkdirSync(journalDir, { recursive: true });
  writeFileSync(join(journalDir, 'c1@eth0.jsonl'), '{"half');
  const runner = new FakeRunner();
  // ADD needs a real netns path; its type check comes first, so point at one that exists.
  const add = await call('ADD', new FakeSystem(), runner, { CNI_NETNS: '/proc/self/ns/net' });
  assert.equal(add.exitCode, 1);
  assert.equal((add.doc as { code: number }).code, 103);
  assert.equal(runner.calls.length, 0);
  const check = await handleCni({ CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/x' },
    () => JSON.stringify({ ...config, prevResult: { cniVersion: '1.1.0', interfaces: [], ips: [] } }), { log: new Logger('error'), runner, sys: new FakeSystem() });
  assert.equal((check.doc as { code: number }).code, 105);
});

test('GC takes the attachment lock: it waits for a DEL in progress on that attachment', async (t) => {
  quietStderr(t);
  const { dir, config } = setup(t);
  const journal = join(dir, 'state', 'journal', 'net', 'c1@eth0.jsonl');
  mkdirSync(join(dir, 'state', 'journal', 'net'), { recursive: true });
  writeFileSync(journal, ''); // a stale attachment: not in the valid list
  let journalWhileHeld: boolean | null = null;
  // A DEL of c1/eth0 holds the lock while GC starts.
  const del = withAttachmentLock(new JournalStore(join(dir, 'state')), { network: 'net', containerId: 'c1', ifName: 'eth0' }, async () => {
    await new Promise((r) => setTimeout(r, 200));
    journalWhileHeld = existsSync(journal);
  });
  const gc = handleCni({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, () => JSON.stringify({ ...config, 'cni.dev/valid-attachments': [] }),
    { log: new Logger('error'), runner: new FakeRunner(), sys: new FakeSystem() });
  const [, out] = await Promise.all([del, gc]);
  assert.equal(out.exitCode, 0, JSON.stringify(out.doc));
  assert.equal(journalWhileHeld, true, 'GC left the attachment alone while the lock was held');
  assert.equal(existsSync(journal), false, 'then removed it');
});

test('a failed ADD reports its own error even when releasing the address fails too', async (t) => {
  quietStderr(t);
  const { dir, config } = setup(t);
  // A node agent that leases an address, then goes unavailable before the release.
  const socket = join(dir, 'agent.sock');
  const agent: AgentHandlers = {
    allocate: async () => ({ address: '10.244.0.7/24', gateway: '10.244.0.1' }),
    release: async () => { throw new ApiFailure(503, { code: 11, msg: 'node agent not ready' }); },
    find: async () => null,
    gc: async () => [],
    status: () => { throw new Error('not used'); },
  };
  const server = apiServer(agent, new AgentMetrics(), () => {});
  await listenUnix(server, socket);
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const runner = new FakeRunner().on((c) => (c.input.includes('link add eth0') ? { exitCode: 1, stderr: 'RTNETLINK answers: File exists\nCommand failed -:1\n' } : undefined));
  const out = await handleCni({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/x' },
    () => JSON.stringify({ ...config, ipam: { type: 'cluster', agentSocket: socket } }), { log: new Logger('error'), runner, sys: new FakeSystem(['lo'], new Set(['/proc/self/ns/net'])) });
  assert.equal(out.exitCode, 1);
  assert.equal((out.doc as { code: number }).code, 101, JSON.stringify(out.doc));
});
