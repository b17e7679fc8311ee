// What ipvlan and macvlan share (planner/child-link.ts): the node network as the pool, host-local's
// IPAM keys, the checks against the master, and a plan whose DEL finds the child under either name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../cni/config.ts';
import { compile } from '../../planner/compile.ts';
import { MODES } from '../../planner/registry.ts';
import { childTempName } from '../../planner/child-link.ts';
import { IPVLAN_MODES } from '../../planner/modes/ipvlan/config.ts';
import { MACVLAN_MODES } from '../../planner/modes/macvlan/config.ts';
import { CniError, Code } from '../../model/errors.ts';
import { argvOf, type NodeFacts } from '../../model/plan.ts';
import { ROOT } from '../helpers/netns.ts';

const BASE = { cniVersion: '1.1.0', name: 'lan', type: 'testcni', mode: 'macvlan', subnet: '192.168.64.0/24' };
const FACTS: NodeFacts = {
  tools: { ip: '/usr/sbin/ip', nsenter: '/usr/bin/nsenter', sysctl: '/usr/sbin/sysctl' }, hostPid: 1, uplink: 'eth0', uplinkMtu: 1500,
};

function refused(raw: Record<string, unknown>, code: number, field: string): void {
  assert.throws(() => loadConfig(raw), (e: unknown) => {
    assert.ok(e instanceof CniError, String(e));
    assert.equal(e.code, code, `${e.message}: ${e.details}`);
    assert.ok(e.message.includes(field) && e.details.includes(field), `${e.message}: ${e.details} should name ${field}`);
    return true;
  }, JSON.stringify(raw));
}

function plan(raw: Record<string, unknown>, facts: NodeFacts = FACTS, command: 'ADD' | 'DEL' = 'ADD') {
  const { config } = loadConfig(raw);
  return compile({ command, config, containerId: 'c1', ifName: 'eth0', netns: '/var/run/netns/p1', lease: { address: '192.168.64.90/24', gateway: '192.168.64.1' }, facts }, MODES.require(config.mode));
}

test('every ipvlan and macvlan mode has a golden ADD plan, and so do the original plugin\'s files', () => {
  for (const m of IPVLAN_MODES) assert.ok(existsSync(join(ROOT, 'fixtures', `ipvlan-${m}-add`, 'plan.json')), `ipvlan-${m}-add`);
  for (const m of MACVLAN_MODES) assert.ok(existsSync(join(ROOT, 'fixtures', `macvlan-${m}-add`, 'plan.json')), `macvlan-${m}-add`);
  for (const m of ['ipvlan', 'macvlan']) assert.ok(existsSync(join(ROOT, 'fixtures', `${m}-original-config`, 'plan.json')), `${m}-original-config`);
});

test('the node network is the pool: the whole subnet, or host-local\'s ipam.subnet', () => {
  const { config } = loadConfig({ ...BASE, ipam: { rangeStart: '192.168.64.90', rangeEnd: '192.168.64.100' } });
  assert.equal(config.ipam.block, '192.168.64.0/24', 'no per-node block: the subnet itself');
  assert.equal(config.ipam.gateway, '192.168.64.1');
  const { subnet: _s, ...noSubnet } = BASE;
  const alt = loadConfig({ ...noSubnet, ipam: { subnet: '10.10.0.0/16', gateway: '10.10.0.254' } }).config;
  assert.equal(alt.subnet, '10.10.0.0/16');
  assert.equal(alt.ipam.block, '10.10.0.0/16');
  assert.equal(alt.ipam.rangeStart, '10.10.0.1');
  assert.equal(alt.ipam.rangeEnd, '10.10.255.254');
  assert.equal(loadConfig({ ...BASE, ipam: { subnet: '192.168.64.0/24' } }).config.subnet, '192.168.64.0/24', 'both, when they agree');
  refused({ ...BASE, ipam: { subnet: '192.168.65.0/24' } }, Code.InvalidConfig, 'ipam.subnet');
  refused({ ...noSubnet }, Code.InvalidConfig, 'subnet');
  refused({ ...BASE, mode: 'host-gw', ipam: { subnet: '10.244.0.0/16' } }, Code.UnsupportedField, 'ipam.subnet');
  refused({ ...BASE, ipam: { block: '192.168.64.0/26' } }, Code.UnsupportedField, 'ipam.block');
});

test('range outside the subnet, gateway outside it, bad routes: code 7 naming the field', () => {
  refused({ ...BASE, ipam: { rangeEnd: '192.168.70.1' } }, Code.InvalidConfig, 'ipam.rangeEnd');
  refused({ ...BASE, ipam: { gateway: '10.0.0.1' } }, Code.InvalidConfig, 'ipam.gateway');
  refused({ ...BASE, ipam: { routes: [{ dst: '10.0.0.0/33' }] } }, Code.InvalidConfig, 'ipam.routes[0].dst');
  refused({ ...BASE, ipam: { routes: [{ dst: '0.0.0.0/0' }, { dst: '0.0.0.0/0', gw: '192.168.64.2' }] } }, Code.InvalidConfig, 'ipam.routes[1].dst');
  refused({ ...BASE, ipam: { routes: [{ dst: '10.0.0.0/8', gw: 'router' }] } }, Code.InvalidConfig, 'ipam.routes[0].gw');
  refused({ ...BASE, ipam: { routes: [{ dst: '10.0.0.0/8', via: '192.168.64.2' }] } }, Code.UnsupportedField, 'ipam.routes.0.via');
  refused({ ...BASE, ipMasq: true }, Code.InvalidConfig, 'ipMasq');
  refused({ ...BASE, macvlan: { master: 'a-name-longer-than-15' } }, Code.InvalidConfig, 'macvlan.master');
});

test('routes: by default one default route via the gateway; given, exactly those (gw defaults to the gateway)', () => {
  const dflt = plan(BASE);
  assert.deepEqual(dflt.steps.filter((s) => s.kind === 'route.add').map((s) => s.id), ['route:pod:default']);
  const given = plan({ ...BASE, ipam: { routes: [{ dst: '10.0.0.0/8' }, { dst: '172.16.0.0/12', gw: '192.168.64.254' }] } });
  assert.deepEqual(given.steps.filter((s) => s.kind === 'route.add').map((s) => argvOf(s).slice(1).join(' ')), [
    'route add 10.0.0.0/8 via 192.168.64.1 dev eth0', 'route add 172.16.0.0/12 via 192.168.64.254 dev eth0']);
  assert.deepEqual(given.result!.routes, [{ dst: '10.0.0.0/8', gw: '192.168.64.1' }, { dst: '172.16.0.0/12', gw: '192.168.64.254' }]);
});

test('the master: named, else the uplink, else the default route\'s; missing or too small an MTU is code 7', () => {
  const mode = MODES.require('macvlan');
  const dev = (raw: Record<string, unknown>) => mode.uplinkOf!(loadConfig(raw).config);
  assert.equal(dev({ ...BASE, macvlan: { master: 'bond0' } }), 'bond0');
  assert.equal(dev({ ...BASE, uplink: 'eth9' }), 'eth9');
  assert.equal(dev(BASE), null, 'null: the facts gatherer takes the default route\'s interface');
  const err = (facts: Partial<NodeFacts>, raw: Record<string, unknown> = BASE) => {
    try {
      plan(raw, { ...FACTS, ...facts });
    } catch (e) {
      return `${(e as CniError).code} ${(e as CniError).details}`;
    }
    return 'planned';
  };
  assert.equal(err({ uplink: null, uplinkMtu: null }), '7 macvlan.master: is not given and the node has no default route to take it from');
  assert.equal(err({ uplink: 'eth7', uplinkMtu: null }), '7 macvlan.master: "eth7": no such device on this node');
  assert.equal(err({}, { ...BASE, mtu: 1501 }), '7 mtu: 1501 is above the MTU of the master eth0 (1500)');
  assert.equal(err({}, { ...BASE, mtu: 1500 }), 'planned');
  assert.equal(err({ uplink: null, uplinkMtu: null }, { ...BASE, mode: 'ipvlan' }), '7 ipvlan.master: is not given and the node has no default route to take it from');
});

test('the child is created from the node straight into the pod under a derived name, then renamed; DEL deletes either name', () => {
  const tmp = childTempName('c1', 'eth0');
  assert.match(tmp, /^tcl[0-9a-f]{10}$/);
  assert.notEqual(childTempName('c2', 'eth0'), tmp);
  const add = plan({ ...BASE, mtu: 1400 });
  const create = add.steps.find((s) => s.id === 'link.macvlan:pod:eth0')!;
  assert.equal(create.ns, 'host', 'run in the node, where the master is');
  assert.ok(create.mech === 'ip');
  assert.deepEqual(create.argv.slice(1, 9), ['link', 'add', tmp, 'link', 'eth0', 'netns', '/var/run/netns/p1', 'address']);
  assert.deepEqual(create.argv.slice(-6), ['mtu', '1400', 'type', 'macvlan', 'mode', 'bridge']);
  assert.deepEqual(create.undo, { ns: '/var/run/netns/p1', mech: 'ip', argv: ['/usr/sbin/ip', 'link', 'del', tmp] });
  const ids = add.steps.map((s) => s.id);
  assert.ok(ids.indexOf('link.name:pod:eth0') === ids.indexOf('link.macvlan:pod:eth0') + 1, 'renamed right after');
  assert.ok(add.steps.every((s) => s.kind !== 'iptables.rule'));
  const del = plan(BASE, { ...FACTS, uplinkMtu: null }, 'DEL');
  assert.deepEqual(del.steps.map((s) => `${s.ns} ${argvOf(s).slice(1).join(' ')}`), [
    '/var/run/netns/p1 link del eth0', `/var/run/netns/p1 link del ${tmp}`]);
});
