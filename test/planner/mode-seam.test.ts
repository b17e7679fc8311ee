// The mode seam: a throwaway mode registered here, with its own config section, tool, pod plan
// and node plan, goes through every layer — config loading and validation, the CNI verbs,
// STATUS, the executor and the agent's node reconcile — without any file outside this test
// knowing about it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import Ajv2019 from 'ajv/dist/2019.js';
import { HOST, type Step } from '../../model/plan.ts';
import type { ModeDefinition } from '../../planner/mode.ts';
import { createRegistry, MODES } from '../../planner/registry.ts';
import { vethStep, addressStep, GOES_WITH_VETH } from '../../planner/steps.ts';
import { compileModeValidator } from '../../schemas/compose.ts';
import { loadConfig } from '../../cni/config.ts';
import { handleCni } from '../../cni/main.ts';
import { readiness } from '../../cni/verbs/status.ts';
import { NodeReconciler } from '../../agent/reconcile.ts';
import { AgentMetrics } from '../../agent/metrics.ts';
import { JournalStore } from '../../executor/journal.ts';
import { Logger } from '../../lib/log.ts';
import { CniError, Code } from '../../model/errors.ts';
import { FakeRunner, FakeSystem, FAKE_FACTS } from '../helpers/fake-node.ts';

interface ToyConfig {
  color: 'red' | 'blue';
}

/** A mode that exists only in this file: its own key, its own tool, pod and node plans. */
const toy: ModeDefinition<'toy', ToyConfig> = {
  name: 'toy',
  summary: 'a throwaway mode for the seam test',
  schema: {
    toy: { type: 'object', properties: { color: { enum: ['red', 'blue'] } }, additionalProperties: false },
  },
  addressing: { pool: 'block', bareSubnetPrefix: 12 },
  parse: (raw) => ({ color: ((raw.toy as { color?: ToyConfig['color'] } | undefined)?.color) ?? 'red' }),
  tools: () => ['toytool'],
  planAdd: (req) => [
    vethStep(req.facts, { podNs: req.netns, podName: req.ifName, podMac: '02:00:00:00:00:01', hostName: 'toyveth', hostMac: '02:00:00:00:00:02', mtu: 1500 }),
    addressStep(req.facts, { ns: req.netns, scope: 'pod', undoReason: GOES_WITH_VETH }, req.ifName, req.lease.address),
    {
      id: `toy:host:${req.config.modeConfig.color}`, kind: 'iptables.rule', scope: 'pod', ns: HOST,
      mech: 'exec', argv: [req.facts.tools.toytool!, 'paint', req.config.modeConfig.color],
      idempotent: false, undo: { ns: HOST, mech: 'exec', argv: [req.facts.tools.toytool!, 'unpaint'] }, probe: null,
      describe: `paint it ${req.config.modeConfig.color}`,
    },
  ],
  resultOf: (req) => ({ interfaces: [{ name: req.ifName, sandbox: req.netns }], ips: [{ address: req.lease.address, interface: 0 }], routes: [], dns: {} }),
  node: {
    observe: (ctx) => ({ painted: { ns: HOST, mech: 'exec', argv: [ctx.facts.tools.toytool!, '-j', 'list'], expect: { $exit: 0 } } }),
    plan: (ctx, observed) => {
      const have = new Set((observed.painted as string[] | null) ?? []);
      return ctx.nodes.filter((n) => n.name !== ctx.self.name && !have.has(n.name)).map((n): Step => ({
        id: `toy:node:${n.name}`, kind: 'route.add', scope: 'node', ns: HOST,
        mech: 'exec', argv: [ctx.facts.tools.toytool!, 'paint-node', n.name, ctx.config.modeConfig.color],
        idempotent: true, undo: null, undoReason: 'node state', probe: null, describe: `paint ${n.name}`,
      }));
    },
  },
  labUnsupported: 'a throwaway mode',
};
toy.validator = compileModeValidator(new Ajv2019.default({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true }), toy);

const registry = createRegistry([...MODES.all(), toy]);
const BASE = { cniVersion: '1.1.0', name: 'net', type: 'testcni', mode: 'toy', subnet: '10.96.0.0' };

const refused = (raw: unknown, code: number, field: string) =>
  assert.throws(() => loadConfig(raw, registry), (e: unknown) => e instanceof CniError && e.code === code && e.message.includes(field), JSON.stringify(raw));

test('the registry lists the toy mode after the built-in ones; the built-in registry knows nothing of it', () => {
  assert.deepEqual(registry.names(), [...MODES.names(), 'toy']);
  assert.equal(MODES.get('toy'), null);
  assert.throws(() => loadConfig(BASE), (e: unknown) => e instanceof CniError && e.code === Code.InvalidConfig && e.message.includes('mode'));
});

test('config: the mode\'s own section is validated by its schema, parsed by its parser, and typed', () => {
  const { config } = loadConfig({ ...BASE, toy: { color: 'blue' } }, registry);
  assert.equal(config.mode, 'toy');
  assert.deepEqual(config.modeConfig, { color: 'blue' });
  assert.equal(config.subnet, '10.96.0.0/12', 'the mode says what a bare subnet means');
  assert.deepEqual(loadConfig(BASE, registry).config.modeConfig, { color: 'red' }, 'its default');
  refused({ ...BASE, toy: { color: 'green' } }, Code.InvalidConfig, 'toy.color');
  refused({ ...BASE, toy: { colour: 'red' } }, Code.UnsupportedField, 'toy.colour');
  refused({ ...BASE, bridge: 'br0' }, Code.UnsupportedField, 'bridge');
  refused({ ...BASE, mode: 'host-gw', subnet: '10.96.0.0/12', toy: {} }, Code.UnsupportedField, 'toy');
});

test('STATUS checks the tools the mode declares', async () => {
  const { config } = loadConfig({ ...BASE, ipam: { dataDir: '/nonexistent-toy-ipam' }, stateDir: join(tmpdir(), 'toy-status-state') }, registry);
  const r = await readiness(config, toy);
  assert.ok(r.problems.some((p) => /toytool not found .*mode toy needs it/.test(p)), r.problems.join('; '));
  rmSync(join(tmpdir(), 'toy-status-state'), { recursive: true, force: true });
});

test('ADD and DEL through the CNI boundary run the mode\'s plan with its tool, on a fake node', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-toy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write;
  t.after(() => { process.stderr.write = write; });
  const netConfig = { ...BASE, toy: { color: 'blue' }, stateDir: join(dir, 'state'), ipam: { dataDir: join(dir, 'ipam') } };
  const call = (command: string, runner: FakeRunner, sys: FakeSystem) => handleCni(
    { CNI_COMMAND: command, CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' },
    () => JSON.stringify(netConfig), { log: new Logger('error'), runner, sys, registry });
  const runner = new FakeRunner();
  const sys = new FakeSystem(['lo'], new Set(['/proc/self/ns/net']));
  const add = await call('ADD', runner, sys);
  assert.equal(add.exitCode, 0, JSON.stringify(add.doc));
  assert.deepEqual((add.doc as { ips: unknown[] }).ips, [{ address: '10.96.0.2/24', interface: 0 }]);
  const painted = runner.calls.find((c) => c.argv.includes('paint'));
  assert.ok(painted, 'the mode\'s own step ran');
  assert.match(painted!.argv[0]!, /\/toytool$/, 'through the tool path the facts resolved');
  assert.deepEqual(painted!.argv.slice(1), ['paint', 'blue'], 'with the parsed section');

  const delRunner = new FakeRunner();
  const del = await call('DEL', delRunner, new FakeSystem(['lo', 'toyveth'], new Set(['/proc/self/ns/net'])));
  assert.equal(del.exitCode, 0, JSON.stringify(del.doc));
  assert.ok(delRunner.calls.some((c) => c.argv.includes('unpaint')), 'DEL runs the mode\'s undo');
  assert.ok(delRunner.batchLines().includes('link del toyveth'));
});

test('the agent\'s node reconcile runs the mode\'s node plan: its queries, then its steps', async () => {
  const { config } = loadConfig({ ...BASE, toy: { color: 'red' } }, registry);
  const runner = new FakeRunner().on((c) => (c.argv.includes('list') ? { stdout: JSON.stringify(['n2']) } : undefined));
  const nodes = ['n1', 'n2', 'n3'].map((name, i) => ({ name, underlayIp: `198.18.0.${11 + i}`, block: `10.96.${i}.0/24` }));
  const r = new NodeReconciler({
    mode: toy, config, self: () => nodes[0]!, nodes: () => nodes, generation: () => 1, runner,
    facts: { ...FAKE_FACTS, tools: { ...FAKE_FACTS.tools, toytool: '/usr/local/bin/toytool' } },
    journals: new JournalStore('/nonexistent-state-dir'), routeProtocol: 151, metrics: new AgentMetrics(), log: new Logger('error'),
    sys: new FakeSystem(),
  });
  await r.runNow();
  assert.equal(r.last?.ok, true, r.last?.error);
  const ran = runner.calls.map((c) => c.argv.slice(1).join(' '));
  assert.deepEqual(ran, ['-j list', 'paint-node n3 red', '-j list'], 'read, change only what is missing, read again');
  assert.equal(r.converged(), true);
});
