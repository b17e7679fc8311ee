// The ipip mode on its own (pure): the config section and its errors, the pod plan's shape per
// ipipMode, and the node planner's parts the goldens do not show (what it waits for, secrets,
// daemons, lab options).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../../cni/config.ts';
import { compile } from '../../../planner/compile.ts';
import { MODES } from '../../../planner/registry.ts';
import { CniError, Code } from '../../../model/errors.ts';
import type { NetworkConfig } from '../../../model/config.ts';
import type { NodeContext } from '../../../planner/mode.ts';
import type { IpipConfig } from '../../../planner/modes/ipip/config.ts';
import { hostVethName, hostVethMac } from '../../../planner/names.ts';
import { argvOf, type Step } from '../../../model/plan.ts';
import { FAKE_FACTS } from '../../helpers/fake-node.ts';

const ipip = MODES.require('ipip');
const BASE = { cniVersion: '1.1.0', name: 'net', type: 'testcni', mode: 'ipip', subnet: '10.244.0.0/16' };
const load = (extra: Record<string, unknown> = {}) => loadConfig({ ...BASE, ...extra }).config as NetworkConfig<'ipip', IpipConfig>;

function refused(extra: Record<string, unknown>, code: number, field: string, notIn?: string): void {
  assert.throws(() => load(extra), (e: unknown) => {
    assert.ok(e instanceof CniError, String(e));
    assert.equal(e.code, code, `${e.message} ${e.details}`);
    assert.ok(e.message.endsWith(field), `${e.message} names ${field}`);
    if (notIn) assert.ok(!`${e.message} ${e.details}`.includes(notIn), 'the value is not echoed');
    return true;
  }, JSON.stringify(extra));
}

test('the original plugin\'s file: an iBGP mesh in AS 64512, every pod route through the tunnel', () => {
  const c = loadConfig({ cniVersion: '0.3.0', name: 'testcni', type: 'testcni', mode: 'ipip', subnet: '10.244.0.0/16' }).config as NetworkConfig<'ipip', IpipConfig>;
  assert.deepEqual(c.modeConfig, { bgp: { asn: 64512, ipipMode: 'always', externalPeers: [] } });
});

test('bad values are code 7 naming the field; unknown keys code 2', () => {
  refused({ bgp: { asn: 0 } }, Code.InvalidConfig, 'bgp.asn');
  refused({ bgp: { asn: 4294967296 } }, Code.InvalidConfig, 'bgp.asn');
  refused({ bgp: { asn: 64512.5 } }, Code.InvalidConfig, 'bgp.asn');
  refused({ bgp: { ipipMode: 'Always' } }, Code.InvalidConfig, 'bgp.ipipMode');
  refused({ bgp: { externalPeers: [{ address: '2001:db8::1', asn: 65001 }] } }, Code.InvalidConfig, 'bgp.externalPeers.0.address');
  refused({ bgp: { externalPeers: [{ address: '10.0.0.256', asn: 65001 }] } }, Code.InvalidConfig, 'bgp.externalPeers.0.address');
  refused({ bgp: { externalPeers: [{ address: '224.0.0.5', asn: 65001 }] } }, Code.InvalidConfig, 'bgp.externalPeers.0.address');
  refused({ bgp: { externalPeers: [{ address: '198.18.0.9', asn: 65001 }, { address: '198.18.0.9', asn: 65002 }] } }, Code.InvalidConfig, 'bgp.externalPeers.1.address');
  refused({ bgp: { externalPeers: [{ address: '198.18.0.9' }] } }, Code.InvalidConfig, 'bgp.externalPeers.0.asn');
  refused({ bgp: { externalPeers: [{ address: '198.18.0.9', asn: 65001, passwordFile: 'relative/pw' }] } }, Code.InvalidConfig, 'bgp.externalPeers.0.passwordFile');
  refused({ bgp: { reflectors: ['198.18.0.1', 'nonsense'] } }, Code.InvalidConfig, 'bgp.reflectors.1');
  refused({ bgp: { routeReflector: { clusterId: '1.2.3' } } }, Code.InvalidConfig, 'bgp.routeReflector.clusterId');
  refused({ bgp: { timers: { holdTime: 10, keepaliveTime: 20 } } }, Code.InvalidConfig, 'bgp.timers.keepaliveTime');
  refused({ bgp: { timers: { errorWaitTime: [30, 5] } } }, Code.InvalidConfig, 'bgp.timers.errorWaitTime');
  refused({ bgp: { tunnelDevice: 'a-name-longer-than-15' } }, Code.InvalidConfig, 'bgp.tunnelDevice');
  refused({ bgp: { meshPassword: 'inline' } }, Code.UnsupportedField, 'bgp.meshPassword', 'inline');
  refused({ bgp: { colour: 'red' } }, Code.UnsupportedField, 'bgp.colour');
  refused({ bridge: 'testcni0' }, Code.UnsupportedField, 'bridge');
});

const facts = { ...FAKE_FACTS, uplinkMtu: 9000 };
const lease = { address: '10.244.1.7/24', gateway: '10.244.1.1' };
const plan = (extra: Record<string, unknown>, command: 'ADD' | 'DEL' = 'ADD') =>
  compile({ command, config: load(extra), containerId: 'c1', ifName: 'eth0', netns: '/var/run/netns/p1', lease, facts }, ipip);
const argvs = (steps: Step[]) => steps.map((s) => (s.mech === 'wait' || s.mech === 'file' ? s.id : argvOf(s).join(' ')));

test('pod MTU: the uplink less 20 when anything is encapsulated (always, crossSubnet); the uplink\'s with never; configured wins', () => {
  const mtu = (extra: Record<string, unknown>) => plan(extra).result!.interfaces[1]!.mtu;
  assert.equal(mtu({}), 8980);
  assert.equal(mtu({ bgp: { ipipMode: 'crossSubnet' } }), 8980);
  assert.equal(mtu({ bgp: { ipipMode: 'never' } }), 9000);
  assert.equal(mtu({ mtu: 1400, bgp: { ipipMode: 'always' } }), 1400);
});

test('pod plan: /32, gateway 169.254.1.1 as a permanent neighbour with the host veth\'s MAC, proxy ARP, host route, wait', () => {
  const p = plan({});
  const host = hostVethName('c1', 'eth0');
  const lines = argvs(p.steps);
  assert.ok(lines.includes('/usr/sbin/ip addr add 10.244.1.7/32 dev eth0'));
  assert.ok(lines.includes(`/usr/sbin/ip neigh replace 169.254.1.1 lladdr ${hostVethMac('c1', 'eth0')} dev eth0 nud permanent`));
  assert.ok(lines.includes('/usr/sbin/ip route add 169.254.1.1/32 dev eth0 scope link'));
  assert.ok(lines.includes('/usr/sbin/ip route add default via 169.254.1.1 dev eth0'));
  assert.ok(lines.includes(`/usr/sbin/sysctl -q -e -w net.ipv4.conf.${host}.proxy_arp=1`));
  assert.ok(lines.includes(`/usr/sbin/sysctl -q -e -w net.ipv4.neigh.${host}.proxy_delay=0`));
  assert.ok(lines.includes(`/usr/sbin/ip route add 10.244.1.7/32 dev ${host} scope link`));
  assert.equal(p.steps.at(-1)!.mech, 'wait', 'ADD ends waiting for the host veth to be up');
  assert.ok(!lines.some((l) => /tunl0|bird/.test(l)), 'the tunnel and BIRD are the node plan\'s, not the pod\'s');
  assert.deepEqual(p.result!.ips, [{ address: '10.244.1.7/32', gateway: '169.254.1.1', interface: 1 }]);
  // Every pod step on the node side goes with the veth: DEL deletes the veth, nothing else.
  assert.deepEqual(argvs(plan({}, 'DEL').steps), [`/usr/sbin/ip link del dev ${host}`]);
});

const nodes = [
  { name: 'n1', underlayIp: '198.18.0.11', block: '10.244.1.0/24' },
  { name: 'n2', underlayIp: '198.18.0.12', block: '10.244.2.0/24' },
  { name: 'n3', underlayIp: '198.18.0.13', block: '10.244.3.0/24' },
];
const ctx = (extra: Record<string, unknown> = {}, over: Partial<NodeContext<IpipConfig>> = {}): NodeContext<IpipConfig> => ({
  config: load(extra), facts: { ...FAKE_FACTS, tools: { ...FAKE_FACTS.tools, bird: '/usr/sbin/bird', birdc: '/usr/sbin/birdc' } },
  self: nodes[0]!, nodes, routeProtocol: 151, underlaySubnet: '198.18.0.0/24', dirs: { run: '/run/x', state: '/var/lib/x' }, secrets: {}, ...over,
});
const learned = (...blocks: string[]) => blocks.map((b, i) => ({ dst: b, gateway: `198.18.0.${12 + i}`, dev: 'tunl0', protocol: 'bird', flags: ['onlink'] }));

test('the node waits until BIRD installed a route to every other node\'s block', () => {
  const node = ipip.node!;
  assert.equal(node.waitingFor!(ctx(), { learned: learned('10.244.2.0/24') }), 'routes from BGP for 10.244.3.0/24');
  assert.equal(node.waitingFor!(ctx(), { learned: learned('10.244.2.0/24', '10.244.3.0/24') }), null);
  assert.equal(node.waitingFor!(ctx({}, { nodes: [nodes[0]!] }), { learned: [] }), null, 'alone: nothing to wait for');
  assert.deepEqual(node.routes!({ learned: learned('10.244.2.0/24') }), [{ dst: '10.244.2.0/24', via: '198.18.0.12' }]);
});

test('secrets: the files the config names, by field; their text is checked without being echoed', () => {
  const node = ipip.node!;
  const config = load({ bgp: { meshPasswordFile: '/etc/pw/mesh', externalPeers: [{ address: '198.18.0.9', asn: 65001 }, { address: '198.18.0.10', asn: 65002, passwordFile: '/etc/pw/p' }] } });
  assert.deepEqual(node.secretFiles!(config), { 'bgp.meshPasswordFile': '/etc/pw/mesh', 'bgp.externalPeers.1.passwordFile': '/etc/pw/p' });
  node.checkSecret!('bgp.meshPasswordFile', 'fine-Password_1');
  for (const bad of ['', 'with"quote', 'x'.repeat(81), 'new\nline']) {
    assert.throws(() => node.checkSecret!('bgp.meshPasswordFile', bad), (e: unknown) =>
      e instanceof CniError && e.code === Code.InvalidConfig && e.message === 'invalid network config: bgp.meshPasswordFile' && !(bad && e.details.includes(bad)));
  }
});

test('daemons: one BIRD with this node\'s files, passwords from the secrets, recovery when the kernel holds its routes', () => {
  const node = ipip.node!;
  const c = ctx({ bgp: { ipipMode: 'never', meshPasswordFile: '/etc/pw/mesh' } }, { secrets: { 'bgp.meshPasswordFile': 'Mesh-pw-1' } });
  const [bird, ...rest] = node.daemons!(c, { learned: [] });
  assert.equal(rest.length, 0);
  assert.deepEqual([bird!.name, bird!.pidFile, bird!.config.path, bird!.config.mode, bird!.config.secrets, bird!.recover],
    ['bird', '/run/x/bird.pid', '/var/lib/x/bird/bird.conf', 0o600, ['Mesh-pw-1'], false]);
  assert.ok(bird!.argv.includes('/run/x/bird.pid'), 'its command line names its PID file');
  assert.equal(node.daemons!(c, { learned: learned('10.244.2.0/24') })[0]!.recover, true);
  assert.throws(() => node.daemons!(ctx({ bgp: { meshPasswordFile: '/etc/pw/mesh' } }), { learned: [] }), /bgp.meshPasswordFile: not read/);
  assert.throws(() => node.daemons!(ctx({}, { underlaySubnet: null }), { learned: [] }), /underlay subnet/);
});

test('lab options: --ipip-mode becomes bgp.ipipMode; every mode but never needs the kernel\'s ipip device', () => {
  const lab = ipip.lab!;
  assert.deepEqual(lab.flags.map((f) => [f.name, f.values, f.default]), [['ipip-mode', ['always', 'crossSubnet', 'never'], 'always']]);
  assert.equal((lab.networkConfig({ 'ipip-mode': 'never' }).bgp as { ipipMode: string }).ipipMode, 'never');
  load(lab.networkConfig({ 'ipip-mode': 'crossSubnet' })); // a config the plugin accepts
  assert.deepEqual(lab.linkTypes({ 'ipip-mode': 'never' }), []);
  assert.deepEqual(lab.linkTypes({ 'ipip-mode': 'always' }).map((x) => x.type), ['ipip']);
  assert.deepEqual(lab.linkTypes({ 'ipip-mode': 'crossSubnet' }).map((x) => x.type), ['ipip']);
});

test('uninstall: the blackhole, the routes BIRD left (cluster subnet only) and the tunnel\'s addresses go; tunl0 stays', () => {
  const td = ipip.node!.teardown!;
  const tctx = { config: load({ bgp: { ipipMode: 'always' } }), facts: FAKE_FACTS, routeProtocol: 151, dirs: { run: '/run/testcni', state: '/var/lib/testcni' } };
  assert.deepEqual(Object.values(td.observe(tctx)).map((p) => (p.mech === 'exec' ? p.argv.slice(1).join(' ') : p.mech === 'file' ? p.path : '')), [
    '-j route show type blackhole proto 151', '-j route show table 254 proto 12', '-j -d addr show type ipip',
    '-s /run/testcni/bird.ctl show status', '/var/lib/testcni/bird/bird.conf',
  ]);
  const { steps, kept } = td.plan(tctx, {
    blackholes: [{ type: 'blackhole', dst: '10.244.1.0/24' }],
    learned: [{ dst: '10.244.2.0/24', gateway: '198.18.0.12', dev: 'tunl0' }, { dst: '192.0.2.0/24', gateway: '198.18.0.1' }],
    tunnel: [{}, { ifname: 'tunl0', addr_info: [{ family: 'inet', local: '10.244.1.1', prefixlen: 32 }, { family: 'inet', local: '192.0.2.9', prefixlen: 32 }] }],
    birdRunning: null,
    birdConfig: null,
  });
  assert.deepEqual(argvs(steps), [
    '/usr/sbin/ip route del blackhole 10.244.1.0/24 proto 151',
    '/usr/sbin/ip route del 10.244.2.0/24 table 254 proto 12',
    '/usr/sbin/ip addr del 10.244.1.1/32 dev tunl0',
  ]);
  assert.equal(kept.length, 2);
  assert.match(kept[0]!, /192\.0\.2\.0\/24 .*not testcni's/);
  assert.match(kept[1]!, /tunl0: the kernel's fallback IPIP device/);
  const other = td.plan({ ...tctx, config: load({ bgp: { tunnelDevice: 'ipip0' } }) }, { blackholes: [], learned: [], tunnel: [{ ifname: 'ipip0', addr_info: [] }], birdRunning: null, birdConfig: null });
  assert.deepEqual(argvs(other.steps), ['/usr/sbin/ip link del dev ipip0'], 'a tunnel of its own name is testcni\'s');
});

test('uninstall: a BIRD still answering on the agent\'s socket is stopped first, through it; BIRD\'s files go last', () => {
  const td = ipip.node!.teardown!;
  const tctx = { config: load({ bgp: { ipipMode: 'never' } }), facts: { ...FAKE_FACTS, tools: { ...FAKE_FACTS.tools, birdc: '/usr/sbin/birdc', rm: '/usr/bin/rm', rmdir: '/usr/bin/rmdir' } }, routeProtocol: 151, dirs: { run: '/run/testcni', state: '/var/lib/testcni' } };
  const { steps } = td.plan(tctx, {
    blackholes: [{ type: 'blackhole', dst: '10.244.1.0/24' }], learned: [], tunnel: [],
    birdRunning: '0001 BIRD 2.0.12 ready.\n1000-BIRD 2.0.12\n', birdConfig: 'router id 198.18.0.11;\n',
  });
  assert.deepEqual(argvs(steps), [
    '/usr/sbin/birdc -s /run/testcni/bird.ctl down',
    '/usr/sbin/ip route del blackhole 10.244.1.0/24 proto 151',
    '/usr/bin/rm -f /var/lib/testcni/bird/bird.conf /var/lib/testcni/bird/bird.log /run/testcni/bird.pid /run/testcni/bird.ctl',
    '/usr/bin/rmdir --ignore-fail-on-non-empty /var/lib/testcni/bird',
  ]);
  assert.deepEqual(td.tools, ['rm', 'rmdir']);
});
