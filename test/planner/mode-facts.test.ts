// The seam's node-facts hooks, through the CNI boundary on a fake node: a mode names its own
// device (uplinkOf), asks the node questions before planning (observe), refuses what the node
// cannot carry before anything is leased (preflight), and reads CNI_ARGS (PlanRequest.args).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import Ajv2019 from 'ajv/dist/2019.js';
import { HOST } from '../../model/plan.ts';
import type { ModeDefinition } from '../../planner/mode.ts';
import { createRegistry, MODES } from '../../planner/registry.ts';
import { badField } from '../../planner/config-fields.ts';
import { compileModeValidator } from '../../schemas/compose.ts';
import { handleCni } from '../../cni/main.ts';
import { Logger } from '../../lib/log.ts';
import { FakeRunner, FakeSystem } from '../helpers/fake-node.ts';

interface Cfg { refuse: boolean }

const probe: ModeDefinition<'probe', Cfg> = {
  name: 'probe',
  summary: 'a throwaway mode for the facts hooks',
  schema: { probe: { type: 'object', properties: { refuse: { type: 'boolean' } }, additionalProperties: false } },
  addressing: { pool: 'subnet' },
  parse: (raw) => ({ refuse: (raw.probe as Cfg | undefined)?.refuse ?? false }),
  tools: () => ['looktool'],
  uplinkOf: () => 'lo',
  observe: (_config, facts) => ({ seen: { ns: HOST, mech: 'exec', argv: [facts.tools.looktool!, '-j', 'look', facts.uplink!], expect: { $exit: 0 } } }),
  preflight(req) {
    if (req.config.modeConfig.refuse) badField('probe.refuse', `the node says ${JSON.stringify(req.facts.observed?.seen)}`);
  },
  planAdd: (req) => [{
    id: 'probe:host:paint', kind: 'iptables.rule', scope: 'pod', ns: HOST, mech: 'exec',
    argv: [req.facts.tools.looktool!, 'paint', String((req.facts.observed?.seen as { color?: string } | null)?.color),
      String(req.facts.uplinkMtu), req.args?.COLOR ?? '-'],
    idempotent: false, undo: null, undoReason: 'test', probe: null, describe: 'paint',
  }],
  resultOf: (req) => ({ interfaces: [{ name: req.ifName, sandbox: req.netns }], ips: [{ address: req.lease.address, interface: 0 }], routes: [], dns: {} }),
  node: null,
  labUnsupported: 'a throwaway mode',
};
probe.validator = compileModeValidator(new Ajv2019.default({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true }), probe);
const registry = createRegistry([...MODES.all(), probe]);

function setup(t: import('node:test').TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-facts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write;
  t.after(() => { process.stderr.write = write; });
  const runner = new FakeRunner()
    .on((c) => (c.argv.includes('look') ? { stdout: JSON.stringify({ color: 'green' }) } : undefined))
    // Outside the initial netns the device's MTU is read with ip: answer as the kernel would.
    .on((c) => (c.argv.join(' ').endsWith('link show dev lo') ? { stdout: JSON.stringify([{ ifname: 'lo', mtu: 65536 }]) } : undefined));
  const ipamDir = join(dir, 'ipam');
  const call = (command: string, extra: Record<string, unknown> = {}, env: Record<string, string> = {}) => handleCni(
    { CNI_COMMAND: command, CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...env },
    () => JSON.stringify({ cniVersion: '1.1.0', name: 'net', type: 'testcni', mode: 'probe', subnet: '192.168.9.0/24', stateDir: join(dir, 'state'), ipam: { dataDir: ipamDir }, ...extra }),
    { log: new Logger('error'), runner, sys: new FakeSystem(['lo'], new Set(['/proc/self/ns/net'])), registry });
  const reserved = () => (existsSync(join(ipamDir, 'net')) ? readdirSync(join(ipamDir, 'net')).filter((f) => /^\d/.test(f)) : []);
  return { runner, call, reserved };
}

test('ADD: the mode\'s device, its observations and CNI_ARGS reach the plan', async (t) => {
  const { runner, call, reserved } = setup(t);
  const add = await call('ADD', {}, { CNI_ARGS: 'IgnoreUnknown=1;COLOR=blue' });
  assert.equal(add.exitCode, 0, JSON.stringify(add.doc));
  const paint = runner.calls.find((c) => c.argv.includes('paint'));
  assert.deepEqual(paint?.argv.slice(1), ['paint', 'green', '65536', 'blue'], 'observed answer, the named device\'s MTU, CNI_ARGS');
  assert.ok(runner.calls.findIndex((c) => c.argv.includes('look')) < runner.calls.indexOf(paint!), 'observed before planning');
  assert.deepEqual(reserved(), ['192.168.9.2']);
});

test('ADD refused by preflight: code 7 naming the field, nothing leased, nothing run but the observation', async (t) => {
  const { runner, call, reserved } = setup(t);
  const add = await call('ADD', { probe: { refuse: true } });
  assert.equal(add.exitCode, 1);
  const doc = add.doc as { code: number; msg: string; details: string };
  assert.equal(doc.code, 7);
  assert.match(doc.msg, /probe\.refuse/);
  assert.match(doc.details, /green/, 'preflight saw the observation');
  assert.deepEqual(reserved(), []);
  assert.ok(runner.calls.every((c) => c.argv.includes('look') || c.argv.join(' ').endsWith('link show dev lo')), runner.calls.map((c) => c.argv.join(' ')).join('; '));
});

test('DEL asks the node nothing before tearing down', async (t) => {
  const { runner, call } = setup(t);
  const del = await call('DEL');
  assert.equal(del.exitCode, 0, JSON.stringify(del.doc));
  assert.ok(!runner.calls.some((c) => c.argv.includes('look')));
});
