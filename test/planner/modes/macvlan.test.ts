// macvlan: the original plugin's file, the MAC a runtime asks for, passthru.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, parseJson } from '../../../cni/config.ts';
import { compile } from '../../../planner/compile.ts';
import { macvlan } from '../../../planner/modes/macvlan/index.ts';
import { podMac } from '../../../planner/names.ts';
import { CniError, Code } from '../../../model/errors.ts';
import { argvOf, type NodeFacts, type Step } from '../../../model/plan.ts';
import type { NetworkConfig } from '../../../model/config.ts';
import type { MacvlanConfig } from '../../../planner/modes/macvlan/config.ts';

const FACTS: NodeFacts = { tools: { ip: '/usr/sbin/ip', nsenter: '/usr/bin/nsenter', sysctl: '/usr/sbin/sysctl' }, hostPid: 1, uplink: 'eth0', uplinkMtu: 1500 };
const BASE = { cniVersion: '1.1.0', name: 'lan', type: 'testcni', mode: 'macvlan', subnet: '192.168.64.0/24' };

function add(raw: Record<string, unknown>, args?: Record<string, string>) {
  const { config } = loadConfig(raw);
  return compile({ command: 'ADD', config, containerId: 'c1', ifName: 'net1', netns: '/run/netns/p', lease: { address: '192.168.64.9/24', gateway: '192.168.64.1' }, facts: FACTS, ...(args ? { args } : {}) }, macvlan);
}

function createArgs(steps: Step[]): string[] {
  return argvOf(steps.find((x) => x.id === 'link.macvlan:pod:net1')!);
}

test('the original plugin\'s macvlan file: bridge mode on the default route\'s interface, the range on the node network', () => {
  const { config } = loadConfig(parseJson('{"cniVersion":"0.3.0","name":"testcni","type":"testcni","mode":"macvlan","subnet":"192.168.64.0/24","ipam":{"rangeStart":"192.168.64.90","rangeEnd":"192.168.64.100"}}'));
  assert.deepEqual(config.modeConfig, { master: null, mode: 'bridge', mac: null, routes: [{ dst: '0.0.0.0/0', gw: '192.168.64.1' }] });
  assert.deepEqual([config.ipam.block, config.ipam.rangeStart, config.ipam.rangeEnd, config.ipam.gateway], ['192.168.64.0/24', '192.168.64.90', '192.168.64.100', '192.168.64.1']);
});

test('the MAC: runtimeConfig.mac, then args.cni.mac, then CNI_ARGS MAC, else derived from the attachment', () => {
  const mac = (raw: Record<string, unknown>, args?: Record<string, string>) => {
    const argv = createArgs(add(raw, args).steps);
    return argv[argv.indexOf('address') + 1];
  };
  assert.equal(mac(BASE), podMac('c1', 'net1'));
  assert.equal(mac(BASE, { MAC: '0A:58:00:00:00:03' }), '0a:58:00:00:00:03');
  assert.equal(mac({ ...BASE, args: { cni: { mac: '0a:58:00:00:00:02' } } }, { MAC: '0a:58:00:00:00:03' }), '0a:58:00:00:00:02');
  assert.equal(mac({ ...BASE, runtimeConfig: { mac: '0a:58:00:00:00:01' }, args: { cni: { mac: '0a:58:00:00:00:02' } } }), '0a:58:00:00:00:01');
  const r = add({ ...BASE, runtimeConfig: { mac: '0a:58:00:00:00:01' } }).result!;
  assert.equal(r.interfaces[0]!.mac, '0a:58:00:00:00:01', 'the result says which');
});

test('a MAC that is not a unicast MAC is refused naming where it came from', () => {
  const code = (raw: Record<string, unknown>, args?: Record<string, string>) => {
    try {
      add(raw, args);
      return 'planned';
    } catch (e) {
      return `${(e as CniError).code} ${(e as CniError).details.split(':')[0]}`;
    }
  };
  assert.equal(code({ ...BASE, runtimeConfig: { mac: '01:00:5e:00:00:01' } }), `${Code.InvalidConfig} runtimeConfig.mac`, 'multicast');
  assert.equal(code({ ...BASE, args: { cni: { mac: 'not-a-mac' } } }), `${Code.InvalidConfig} args.cni.mac`);
  assert.equal(code(BASE, { MAC: '00:00:00:00:00:00' }), `${Code.InvalidEnv} CNI_ARGS MAC`);
  assert.equal(code(BASE, { MAC: '0a:58:00:00:00:01', K8S_POD_NAME: 'x' }), 'planned', 'other CNI_ARGS are ignored');
});

test('passthru: the child has the master\'s MAC, so none is set or reported, and none can be asked for', () => {
  const plan = add({ ...BASE, macvlan: { mode: 'passthru' } });
  assert.ok(!createArgs(plan.steps).includes('address'));
  assert.equal(plan.result!.interfaces[0]!.mac, undefined);
  assert.throws(() => add({ ...BASE, macvlan: { mode: 'passthru' } }, { MAC: '0a:58:00:00:00:01' }), (e: unknown) => e instanceof CniError && e.details.startsWith('CNI_ARGS MAC'));
  assert.throws(() => loadConfig({ ...BASE, macvlan: { mode: 'passthru' }, runtimeConfig: { mac: '0a:58:00:00:00:01' } }), (e: unknown) => e instanceof CniError && e.message.includes('runtimeConfig.mac'));
});

test('macvlan has no node plan and runs in the lab', () => {
  assert.equal(macvlan.node, null);
  assert.equal(macvlan.labUnsupported, null);
  assert.deepEqual(macvlan.tools(loadConfig(BASE).config as NetworkConfig<string, MacvlanConfig>), []);
});
