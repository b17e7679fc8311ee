// ipvlan: the original plugin's file, and one mode per master held by the anchor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, parseJson } from '../../../cni/config.ts';
import { compile } from '../../../planner/compile.ts';
import { ipvlan } from '../../../planner/modes/ipvlan/index.ts';
import { anchorName, ANCHOR_QUERY } from '../../../planner/modes/ipvlan/anchor.ts';
import { holds } from '../../../planner/predicate.ts';
import { CniError } from '../../../model/errors.ts';
import type { NodeFacts } from '../../../model/plan.ts';
import type { NetworkConfig } from '../../../model/config.ts';
import type { IpvlanConfig } from '../../../planner/modes/ipvlan/config.ts';

const FACTS: NodeFacts = { tools: { ip: '/usr/sbin/ip', nsenter: '/usr/bin/nsenter', sysctl: '/usr/sbin/sysctl' }, hostPid: 1, uplink: 'eth0', uplinkMtu: 1500 };
const BASE = { cniVersion: '1.1.0', name: 'lan', type: 'testcni', mode: 'ipvlan', subnet: '192.168.64.0/24' };
const anchorJson = (mode: string, kind = 'ipvlan') => [{ ifname: anchorName('eth0'), link: 'eth0', linkinfo: { info_kind: kind, info_data: { mode } } }];

function add(raw: Record<string, unknown>, observed: unknown) {
  const { config } = loadConfig(raw);
  const facts = observed === undefined ? FACTS : { ...FACTS, observed: { [ANCHOR_QUERY]: observed } };
  return compile({ command: 'ADD', config, containerId: 'c1', ifName: 'eth0', netns: '/run/netns/p', lease: { address: '192.168.64.9/24', gateway: '192.168.64.1' }, facts }, ipvlan);
}

test('the original plugin\'s ipvlan file as it is: l2 on the default route\'s interface, the range on the node network', () => {
  const { config } = loadConfig(parseJson('{"cniVersion":"0.3.0","name":"testcni","type":"testcni","mode":"ipvlan","subnet":"192.168.64.0/24","ipam":{"rangeStart":"192.168.64.90","rangeEnd":"192.168.64.100"}}'));
  assert.deepEqual(config.modeConfig, { master: null, mode: 'l2', routes: [{ dst: '0.0.0.0/0', gw: '192.168.64.1' }] });
  assert.equal(config.ipam.rangeStart, '192.168.64.90');
});

test('before planning, the anchor of the master is looked at in the node', () => {
  const config = loadConfig(BASE).config as NetworkConfig<string, IpvlanConfig>;
  const q = ipvlan.observe!(config, FACTS);
  assert.deepEqual(Object.keys(q), [ANCHOR_QUERY]);
  const query = q[ANCHOR_QUERY]!;
  assert.ok(query.mech === 'exec');
  assert.deepEqual(query.argv.slice(1), ['-d', '-j', 'link', 'show', 'dev', anchorName('eth0')]);
  assert.equal(query.ns, 'host');
  assert.deepEqual(ipvlan.observe!(config, { ...FACTS, uplink: null }), {}, 'no master, nothing to look at');
});

test('the first pod on a master plans the anchor in its mode; later pods in that mode do not', () => {
  const first = add({ ...BASE, ipvlan: { mode: 'l3' } }, null);
  const anchor = first.steps.find((s) => s.id.startsWith('link.ipvlan-anchor:'))!;
  assert.ok(anchor.mech === 'ip');
  assert.deepEqual(anchor.argv.slice(1), ['link', 'add', anchorName('eth0'), 'link', 'eth0', 'type', 'ipvlan', 'mode', 'l3']);
  assert.equal(anchor.scope, 'node');
  assert.equal(anchor.undo, null);
  assert.ok(first.steps.indexOf(anchor) < first.steps.findIndex((s) => s.id === 'link.ipvlan:pod:eth0'), 'before the child');
  // The anchor's probe reads the mode: a concurrent first ADD with another mode fails, not switches it.
  const out = (mode: string) => ({ exitCode: 0, stdout: '', json: anchorJson(mode) });
  assert.equal(holds(anchor.probe!.expect, out('l3')), true);
  assert.equal(holds(anchor.probe!.expect, out('l2')), false);
  const later = add({ ...BASE, ipvlan: { mode: 'l3' } }, anchorJson('l3'));
  assert.ok(!later.steps.some((s) => s.id.startsWith('link.ipvlan-anchor:')));
  assert.equal(later.steps.length, first.steps.length - 1);
});

test('a pod asking for another mode than the master carries is refused, naming ipvlan.mode', () => {
  assert.throws(() => add({ ...BASE, ipvlan: { mode: 'l2' } }, anchorJson('l3s')), (e: unknown) =>
    e instanceof CniError && e.code === 7 && e.message.includes('ipvlan.mode') && /carries ipvlan mode l3s/.test(e.details) && /asks for l2/.test(e.details));
  assert.throws(() => add(BASE, anchorJson('bridge', 'macvlan')), (e: unknown) => e instanceof CniError && e.message.includes('ipvlan.master'));
});

test('ipvlan names why the lab cannot run it here', () => {
  assert.match(ipvlan.labUnsupported ?? '', /kernel with ipvlan/);
  assert.equal(ipvlan.node, null);
});
