// vxlan (pure): the config section and its bad values, the pod plan's shape (what ADD runs on a
// node that is set up: no probe process; one batch per tool; the endpoint last and undone first),
// and the node plan's decisions for what the agent observed (fresh, steady, a node joining and
// leaving, a wrong device, a new build, stale endpoints). The real thing: test/bpf/datapath,
// test/e2e/vxlan, test/e2e/lab-vxlan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, parseJson } from '../../../cni/config.ts';
import { compile, teardownSteps } from '../../../planner/compile.ts';
import { vxlan } from '../../../planner/modes/vxlan/index.ts';
import { nodeEnsureSteps, vtepMac, ifindexToken, mapPath, progDir, progPath, OBJECT } from '../../../planner/modes/vxlan/dataplane.ts';
import { dataplaneFor } from '../../../planner/modes/vxlan/node.ts';
import { CniError, Code } from '../../../model/errors.ts';
import { argvOf, type NodeFacts, type Step } from '../../../model/plan.ts';
import type { NetworkConfig } from '../../../model/config.ts';
import type { NodeRecord } from '../../../model/node.ts';
import type { VxlanConfig } from '../../../planner/modes/vxlan/config.ts';
import { ENDPOINTS, REMOTE, CONFIG, endpointEntry, remoteEntry, configEntry, lookupJson } from '../../../bpf/maps.ts';
import { isFast } from '../../../executor/probe.ts';

const TOOLS = Object.fromEntries(['ip', 'nsenter', 'sysctl', 'tc', 'bpftool', 'ethtool', 'mount', 'mkdir', 'mv', 'rm', 'rmdir', 'iptables'].map((t) => [t, `/usr/sbin/${t}`]));
const FACTS: NodeFacts = {
  tools: TOOLS as NodeFacts['tools'], hostPid: 4242, uplink: 'eth0', uplinkMtu: 1500, netns: '4026531840', kernel: '6.1.0-13-amd64',
  objects: { [OBJECT]: { path: '/opt/cni/bin/bpf/vxlan.o', digest: '0123456789abcdef' } },
};
const ORIGINAL = '{"cniVersion":"0.3.0","name":"testcni","type":"testcni","mode":"vxlan","subnet":"10.244.0.0"}';
const BASE = { cniVersion: '1.1.0', name: 'net', type: 'testcni', mode: 'vxlan', subnet: '10.244.0.0/16' };

function config(raw: Record<string, unknown> = BASE): NetworkConfig<string, VxlanConfig> {
  return loadConfig(raw).config as NetworkConfig<string, VxlanConfig>;
}

function add(raw: Record<string, unknown> = BASE, facts: NodeFacts = FACTS) {
  return compile({ command: 'ADD', config: config(raw), containerId: 'c1', ifName: 'eth0', netns: '/run/netns/p', lease: { address: '10.244.1.7/24', gateway: '10.244.1.1' }, facts }, vxlan);
}

function refusal(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (e) {
    assert.ok(e instanceof CniError, String(e));
    return `${e.code} ${e.message.replace(/^invalid network config: /, '')}`;
  }
}

test('the original\'s file as it is: a bare subnet is a /16, every vxlan setting has its default', () => {
  const c = loadConfig(parseJson(ORIGINAL)).config as NetworkConfig<string, VxlanConfig>;
  assert.equal(c.subnet, '10.244.0.0/16');
  assert.deepEqual(c.modeConfig, {
    vni: 13190, port: 8472, device: 'testcni.vxlan', mtu: null, maxEndpoints: 16384, maxRemoteBlocks: 4096, bpffs: '/sys/fs/bpf', txChecksumOffload: 'auto',
  });
  const mtu = add(parseJson(ORIGINAL) as Record<string, unknown>).result!.interfaces[1]!.mtu;
  assert.equal(mtu, 1450, 'the underlay\'s 1500 less 50 of VXLAN headers');
});

test('a full vxlan section: the IANA port, another VNI, device, MTU and map sizes reach the plan', () => {
  const plan = add({ ...BASE, vxlan: { vni: 42, port: 4789, device: 'vx0', mtu: 1400, maxEndpoints: 100, maxRemoteBlocks: 10, txChecksumOffload: true } });
  const argv = (id: string) => argvOf(plan.steps.find((s) => s.id === id)!).join(' ');
  assert.match(argv('link.vxlan:host:vx0'), / mtu 1400 arp off type vxlan external dstport 4789 nolearning$/);
  assert.ok(!plan.steps.some((s) => s.id.startsWith('ethtool:')), 'offload on is what a new device has: ADD leaves it to the node plan');
  assert.match(argv('bpf.map.create:host:testcni_eps'), / entries 100 /);
  assert.match(argv('bpf.map.create:host:testcni_remote'), / entries 20 /, 'two entries per remote node: its block and its address');
  assert.match(argv('bpf.map.update:host:testcni_cfg'), new RegExp(`value hex ${ifindexToken('vx0').replace(/[()]/g, '\\$&')} 2a 00 00 00 `), 'VNI 42');
  assert.equal(plan.result!.interfaces[1]!.mtu, 1400);
});

test('bad values: code 7 naming the field (VNI out of range, port 0, a map size of 0, an MTU the underlay cannot carry)', () => {
  const rows: [Record<string, unknown>, string][] = [
    [{ vxlan: { vni: 0 } }, 'vxlan.vni'],
    [{ vxlan: { vni: 16777216 } }, 'vxlan.vni'],
    [{ vxlan: { port: 0 } }, 'vxlan.port'],
    [{ vxlan: { port: 65536 } }, 'vxlan.port'],
    [{ vxlan: { maxEndpoints: 0 } }, 'vxlan.maxEndpoints'],
    [{ vxlan: { maxRemoteBlocks: 0 } }, 'vxlan.maxRemoteBlocks'],
    [{ vxlan: { device: 'a-name-far-too-long' } }, 'vxlan.device'],
    [{ vxlan: { bpffs: 'relative' } }, 'vxlan.bpffs'],
    [{ vxlan: { mtu: 1400 }, mtu: 1450 }, 'mtu'],
  ];
  for (const [extra, field] of rows) assert.equal(refusal(() => config({ ...BASE, ...extra })), `${Code.InvalidConfig} ${field}`, JSON.stringify(extra));
  assert.equal(refusal(() => config({ ...BASE, vxlan: { vnid: 1 } })), `${Code.UnsupportedField} unsupported field: vxlan.vnid`);
  // Against the node: checked before anything is leased (preflight), and by compile.
  assert.equal(refusal(() => add({ ...BASE, vxlan: { mtu: 1451 } })), `${Code.InvalidConfig} vxlan.mtu`);
  assert.equal(refusal(() => add({ ...BASE, mtu: 1451 })), `${Code.InvalidConfig} mtu`);
  assert.equal(refusal(() => vxlan.preflight!({ command: 'ADD', config: config({ ...BASE, vxlan: { mtu: 9000 } }), containerId: 'c', ifName: 'eth0', netns: '/p', facts: FACTS })), `${Code.InvalidConfig} vxlan.mtu`);
  assert.equal(refusal(() => add({ ...BASE, vxlan: { mtu: 1450 } })), 'accepted');
  assert.equal(refusal(() => add({ ...BASE, vxlan: { mtu: 8950 } }, { ...FACTS, uplinkMtu: 9000 })), 'accepted', 'a jumbo underlay');
});

test('tx checksum offload: auto is off before Linux 5.7 (the bug the original worked around), on from 5.7; a setting wins', () => {
  // The node plan says what the device should have (ADD leaves out the step when it is `on`, a new device's state).
  const tx = (setting: unknown, kernel: string | undefined) => {
    const c = { ...ctx([SELF], setting === undefined ? BASE : { ...BASE, vxlan: { txChecksumOffload: setting } }), facts: { ...FACTS, kernel } };
    return argvOf(nodeEnsureSteps(dataplaneFor(c)).find((s) => s.id === 'ethtool:host:testcni.vxlan:tx')!).at(-1);
  };
  assert.equal(tx(undefined, '6.1.0-13-amd64'), 'on');
  assert.equal(tx(undefined, '5.7.0'), 'on');
  assert.equal(tx(undefined, '5.6.19'), 'off');
  assert.equal(tx(undefined, '4.19.0-26-amd64'), 'off');
  assert.equal(tx(undefined, undefined), 'off', 'unknown: the safe side');
  assert.equal(tx(false, '6.18.0'), 'off');
  assert.equal(tx(true, '4.19.0'), 'on');
  assert.equal(refusal(() => config({ ...BASE, vxlan: { txChecksumOffload: 'yes' } })), `${Code.InvalidConfig} vxlan.txChecksumOffload`);
});

test('pod ADD on a node that is set up: every probe of a node step is answered in-process; the offload is set only to turn it off', () => {
  const plan = add();
  const node = plan.steps.filter((s) => s.scope === 'node');
  const probedFirst = node.filter((s) => s.probe && (!s.idempotent || isFast(s.probe)));
  const slow = probedFirst.filter((s) => !isFast(s.probe!));
  assert.deepEqual(slow.map((s) => s.id), [], 'no node step needs a process to be skipped');
  // What runs on every ADD: the steps repeated because they are harmless and share a batch, and ethtool.
  const repeated = node.filter((s) => !probedFirst.includes(s)).map((s) => `${s.mech} ${s.id}`);
  assert.deepEqual(repeated, [
    'ip addr:host:testcni.vxlan', 'ip link.up:host:testcni.vxlan',
    'tc tc.qdisc:host:testcni.vxlan', 'tc tc.filter:host:testcni.vxlan:ingress', 'tc tc.filter:host:testcni.vxlan:egress',
    'bpftool bpf.map.update:host:testcni_cfg',
  ]);
});

test('pod ADD: one batch per tool and namespace, the endpoint entry last; DEL undoes it first, then the veth', () => {
  const plan = add();
  const ids = plan.steps.map((s) => s.id);
  const runs: string[] = [];
  for (const s of plan.steps.filter((x) => !x.id.startsWith('sysctl:') && !(x.scope === 'node' && x.probe && isFast(x.probe)))) {
    const key = `${s.mech}@${s.ns === 'host' ? 'node' : 'pod'}`;
    if (runs[runs.length - 1] !== key) runs.push(key);
  }
  assert.deepEqual(runs, ['ip@pod', 'ip@node', 'tc@node', 'bpftool@node', 'wait@node']);
  const off = add({ ...BASE, vxlan: { txChecksumOffload: false } }).steps.filter((s) => s.id.startsWith('ethtool:'));
  assert.deepEqual(off.map((s) => argvOf(s).slice(1).join(' ')), ['-K testcni.vxlan tx off'], 'off: set by every ADD (ethtool, one process)');
  assert.equal(ids.at(-2), 'bpf.map.update:host:testcni_eps:10.244.1.7');
  const del = teardownSteps(plan.steps);
  assert.deepEqual(del.map((s) => s.id), ['undo:bpf.map.update:host:testcni_eps:10.244.1.7', 'undo:link.veth:pod:eth0']);
  assert.deepEqual(argvOf(del[0]!).slice(1), ['map', 'delete', 'pinned', '/sys/fs/bpf/testcni/net/netns-4026531840/maps/testcni_eps', 'key', 'hex', '0a', 'f4', '01', '07']);
});

test('pod ADD: the pod gets a /32, the gateway as a permanent neighbour at the host veth\'s MAC, the node a route to it', () => {
  const plan = add();
  const argv = (id: string) => argvOf(plan.steps.find((s) => s.id === id)!).slice(1).join(' ');
  const hostVeth = plan.result!.interfaces[0]!.name;
  assert.equal(argv('addr:pod:eth0'), 'addr add 10.244.1.7/32 dev eth0');
  assert.equal(argv('neigh:pod:eth0:10.244.1.1'), `neigh replace 10.244.1.1 lladdr ${plan.result!.interfaces[0]!.mac} dev eth0 nud permanent`);
  assert.equal(argv(`route:host:10.244.1.7/32`), `route add 10.244.1.7/32 dev ${hostVeth}`);
  assert.equal(argv('addr:host:testcni.vxlan'), 'addr replace 10.244.1.1/32 dev testcni.vxlan');
  const ep = plan.steps.find((s) => s.id === 'bpf.map.update:host:testcni_eps:10.244.1.7')!;
  assert.deepEqual(ep.mech === 'bpftool' && ep.ifindexOf, [hostVeth], 'the host veth\'s ifindex is read when the entry is written');
  assert.ok(argvOf(ep).includes(ifindexToken(hostVeth)));
  assert.deepEqual(plan.result!.ips, [{ address: '10.244.1.7/32', gateway: '10.244.1.1', interface: 1 }]);
});

test('pin directories: per network and network namespace; a network name with a dot is made bpffs-safe', () => {
  const n = dataplaneFor({ config: config(), facts: FACTS, self: { name: 'n1', underlayIp: '198.18.0.11', block: '10.244.1.0/24' } });
  assert.equal(n.pinDir, '/sys/fs/bpf/testcni/net/netns-4026531840');
  assert.equal(progDir(n), '/sys/fs/bpf/testcni/net/netns-4026531840/progs-0123456789abcdef');
  const dotted = dataplaneFor({ config: config({ ...BASE, name: 'a.b' }), facts: FACTS, self: { name: 'n1', underlayIp: '', block: '10.244.1.0/24' } });
  assert.match(dotted.pinDir, /^\/sys\/fs\/bpf\/testcni\/a_b-[0-9a-f]{8}\/netns-4026531840$/);
  for (const s of nodeEnsureSteps(dotted)) for (const a of argvOf(s)) if (a.startsWith('/sys/fs/bpf/testcni')) assert.ok(!a.slice('/sys/fs/bpf'.length).includes('.'), a);
});

// ---- the node plan, on what the agent observed ----

const SELF: NodeRecord = { name: 'n1', underlayIp: '198.18.0.11', block: '10.244.1.0/24' };
const N2: NodeRecord = { name: 'n2', underlayIp: '198.18.0.12', block: '10.244.2.0/24' };
const N3: NodeRecord = { name: 'n3', underlayIp: '198.18.0.13', block: '10.244.3.0/24' };

function ctx(nodes: NodeRecord[], raw: Record<string, unknown> = BASE) {
  return { config: config(raw), facts: FACTS, self: SELF, nodes, routeProtocol: 151, underlaySubnet: '198.18.0.0/24', dirs: { run: '/run/testcni', state: '/var/lib/testcni' }, secrets: {} };
}

const hexStrings = (bytes: number[]) => bytes.map((b) => `0x${b.toString(16).padStart(2, '0')}`);

/** A pinned program as `bpftool prog show pinned` shows it, under its query's name (dataplane.ts showPinnedQueries). */
const shown = (path: string, id: number, name: string) => ({ [`show.prog:${path}`]: { id, name, type: 'sched_cls' } });

/** What a node that holds everything for `nodes` (and one pod, ifindex 7) answers. */
function steady(nodes: NodeRecord[], over: Record<string, unknown> = {}): Record<string, unknown> {
  const c = ctx(nodes);
  const n = dataplaneFor(c);
  const file = [{ type: 'file', fs: 'cafe4a11' }];
  const progs = Object.assign({}, ...['tcni_from_pod', 'tcni_from_vxlan', 'tcni_to_vxlan'].map((name, i) => shown(progPath(n, name), 100 + i, name)));
  const remote = nodes.filter((x) => x.name !== SELF.name).flatMap((x) => [x.block, `${x.underlayIp}/32`].map((cidr) => {
    const e = remoteEntry({ cidr, nodeIp: x.underlayIp, vtepMac: vtepMac(x.block) });
    return { key: hexStrings(e.key), value: hexStrings(e.value as number[]) };
  }));
  const cfg = configEntry({ vxlanIfindex: 3, vni: 13190, vxlanMac: n.mac });
  const ep = endpointEntry({ ip: '10.244.1.7', ifindex: 7, podMac: '02:00:00:00:00:07', hostMac: '02:00:00:00:01:07' });
  return {
    links: [
      { ifname: 'eth0', ifindex: 2, mtu: 1500, flags: ['UP'] },
      { ifname: 'testcni.vxlan', ifindex: 3, address: n.mac, mtu: 1450, flags: ['UP'], linkinfo: { info_kind: 'vxlan', info_data: { external: true, port: 8472 } }, addr_info: [{ local: '10.244.1.1', prefixlen: 32 }] },
      { ifname: 'tcaaaaaaaaaaa', ifindex: 7, flags: ['UP'] },
    ],
    linksAfter: [{ ifname: 'eth0', ifindex: 2 }, { ifname: 'testcni.vxlan', ifindex: 3 }, { ifname: 'tcaaaaaaaaaaa', ifindex: 7 }],
    bpffs: file, mapDir: [{ type: 'directory', fs: 'cafe4a11' }],
    [`map:${ENDPOINTS.name}`]: file, [`map:${REMOTE.name}`]: file, [`map:${CONFIG.name}`]: file, progs: file,
    route: [{ dst: '10.244.0.0/16', dev: 'testcni.vxlan', prefsrc: '10.244.1.1', protocol: '151' }],
    net: [{ tc: [
      { devname: 'testcni.vxlan', ifindex: 3, kind: 'clsact/ingress', name: 'tcni_from_vxlan:[*fsobj]', id: 101 },
      { devname: 'testcni.vxlan', ifindex: 3, kind: 'clsact/egress', name: 'tcni_to_vxlan:[*fsobj]', id: 102 },
      { devname: 'tcaaaaaaaaaaa', ifindex: 7, kind: 'clsact/ingress', name: 'tcni_from_pod:[*fsobj]', id: 100 },
    ] }],
    'net.ipv4.ip_forward': '1', 'net.ipv4.conf.default.forwarding': '1', 'net.ipv4.conf.eth0.forwarding': '1', 'net.ipv4.conf.testcni/vxlan.forwarding': '1',
    endpoints: [{ key: hexStrings(ep.key), value: hexStrings(ep.value as number[]) }],
    remote, cfg: [{ key: hexStrings(cfg.key), value: hexStrings(cfg.value as number[]) }],
    ethtool: [{ 'tx-checksumming': { active: true } }],
    ...progs,
    ...over,
  };
}

const planIds = (nodes: NodeRecord[], observed: Record<string, unknown>) => vxlan.node!.plan(ctx(nodes), observed).map((s: Step) => s.id);

test('node plan: a node that holds everything for the registry needs nothing', () => {
  assert.deepEqual(planIds([SELF, N2], steady([SELF, N2])), []);
});

test('node plan: a fresh node gets bpffs, pins, device, maps, programs, route, config, filters and the other nodes', () => {
  const fresh = { links: [{ ifname: 'eth0', ifindex: 2 }], bpffs: [{ type: 'directory', fs: '62656572' }], mapDir: null, progs: null, route: [], net: [{ tc: [] }],
    [`map:${ENDPOINTS.name}`]: null, [`map:${REMOTE.name}`]: null, [`map:${CONFIG.name}`]: null, endpoints: undefined, linksAfter: undefined, remote: undefined, cfg: undefined, ethtool: undefined, programs: [] };
  assert.deepEqual(planIds([SELF, N2], steady([SELF, N2], fresh)), [
    'bpffs:host:/sys/fs/bpf', 'dir:host:/sys/fs/bpf/testcni/net/netns-4026531840/maps',
    'link.vxlan:host:testcni.vxlan', 'ethtool:host:testcni.vxlan:tx', 'addr:host:testcni.vxlan', 'link.up:host:testcni.vxlan', 'route:host:10.244.0.0/16',
    'bpf.map.create:host:testcni_eps', 'bpf.map.create:host:testcni_remote', 'bpf.map.create:host:testcni_cfg',
    `bpf.load:host:${progDir(dataplaneFor(ctx([])))}`, `fs.rename:host:${progDir(dataplaneFor(ctx([])))}`, `fs.remove:host:${progDir(dataplaneFor(ctx([])))}-tmp`,
    'bpf.map.update:host:testcni_cfg', 'tc.qdisc:host:testcni.vxlan', 'tc.filter:host:testcni.vxlan:ingress', 'tc.filter:host:testcni.vxlan:egress',
    'bpf.map.update:host:testcni_remote:10.244.2.0/24', 'bpf.map.update:host:testcni_remote:198.18.0.12/32',
  ]);
});

test('node plan: a node joins (its two prefixes added), another leaves (its two removed, nothing else touched)', () => {
  assert.deepEqual(planIds([SELF, N2, N3], steady([SELF, N2])), ['bpf.map.update:host:testcni_remote:10.244.3.0/24', 'bpf.map.update:host:testcni_remote:198.18.0.13/32']);
  assert.deepEqual(planIds([SELF, N3], steady([SELF, N2, N3])), ['bpf.map.delete:host:testcni_remote:10.244.2.0/24', 'bpf.map.delete:host:testcni_remote:198.18.0.12/32']);
  const moved = { ...N2, underlayIp: '198.18.0.99' };
  assert.deepEqual(planIds([SELF, moved], steady([SELF, N2])), [
    'bpf.map.update:host:testcni_remote:10.244.2.0/24', 'bpf.map.update:host:testcni_remote:198.18.0.99/32', 'bpf.map.delete:host:testcni_remote:198.18.0.12/32',
  ]);
});

test('node plan: endpoints whose host veth is gone are removed; the device, when not an external VXLAN device on our port, is made again', () => {
  const gone = steady([SELF], { linksAfter: [{ ifname: 'eth0', ifindex: 2 }, { ifname: 'testcni.vxlan', ifindex: 3 }] });
  assert.deepEqual(planIds([SELF], gone), ['bpf.map.delete:host:testcni_eps:10.244.1.7']);
  const o = steady([SELF]);
  const links = (o.links as Record<string, unknown>[]).map((l) => (l.ifname === 'testcni.vxlan' ? { ...l, linkinfo: { info_kind: 'vxlan', info_data: { external: false, port: 8472 } } } : l));
  const ids = planIds([SELF], { ...o, links });
  assert.deepEqual(ids.slice(0, 2), ['link.del:host:testcni.vxlan', 'link.vxlan:host:testcni.vxlan']);
  for (const id of ['ethtool:host:testcni.vxlan:tx', 'addr:host:testcni.vxlan', 'link.up:host:testcni.vxlan', 'route:host:10.244.0.0/16', 'bpf.map.update:host:testcni_cfg', 'tc.filter:host:testcni.vxlan:ingress']) {
    assert.ok(ids.includes(id), `${id} after the device is made again`);
  }
  const mtu = (o.links as Record<string, unknown>[]).map((l) => (l.ifname === 'testcni.vxlan' ? { ...l, mtu: 1400 } : l));
  assert.deepEqual(planIds([SELF], { ...o, links: mtu }), ['link.mtu:host:testcni.vxlan']);
  assert.deepEqual(planIds([SELF], { ...o, ethtool: [{ 'tx-checksumming': { active: false } }] }), ['ethtool:host:testcni.vxlan:tx']);
});

test('node plan: a new build\'s programs are loaded beside the old, every filter moved to them, the old pins removed once unused', () => {
  const o = steady([SELF]);
  const newer = { ...FACTS, objects: { [OBJECT]: { path: '/x/vxlan.o', digest: 'fedcba9876543210' } } };
  const c = { ...ctx([SELF]), facts: newer };
  const n = dataplaneFor(c);
  const ids = vxlan.node!.plan(c, { ...o, progs: null }).map((s) => s.id);
  assert.deepEqual(ids, [
    `bpf.load:host:${progDir(n)}`, `fs.rename:host:${progDir(n)}`, `fs.remove:host:${progDir(n)}-tmp`,
    'tc.qdisc:host:testcni.vxlan', 'tc.filter:host:testcni.vxlan:ingress', 'tc.filter:host:testcni.vxlan:egress', 'tc.filter:host:tcaaaaaaaaaaa:ingress',
  ]);
  // Loaded and attached: the old build's directory goes.
  const old = progDir(dataplaneFor(ctx([SELF])));
  const programs = Object.assign({}, ...['tcni_from_pod', 'tcni_from_vxlan', 'tcni_to_vxlan'].map((name, i) => shown(progPath(n, name), 200 + i, name)));
  const net = [{ tc: (o.net as { tc: { id: number }[] }[])[0]!.tc.map((a) => ({ ...a, id: a.id + 100 })) }];
  assert.deepEqual(vxlan.node!.plan(c, { ...o, ...programs, net }).map((s) => s.id), [`fs.remove:host:${old}`]);
});

test('node observation shows each pinned program by its pin (CAP_BPF), never lists every object (CAP_SYS_ADMIN)', () => {
  const c = ctx([SELF]);
  const n = dataplaneFor(c);
  const q = vxlan.node!.observe(c);
  assert.deepEqual(q.pins, { ns: 'host', mech: 'path', path: n.pinDir, list: true, expect: { $some: { type: 'directory' } } });
  const dir = progDir(n).slice(n.pinDir.length + 1);
  const listing = [{ type: 'directory', fs: 'cafe4a11', files: ['maps/testcni_eps', `${dir}/tcni_from_pod`, `${dir}/tcni_to_vxlan`, 'progs-0123456789abcdef-tmp77/tcni_from_pod'] }];
  const more = vxlan.node!.observeMore!(c, { pins: listing });
  const shows = Object.entries(more).filter(([k]) => k.startsWith('show.')).map(([k, p]) => [k, p.mech === 'exec' ? p.argv.slice(1) : null]);
  assert.deepEqual(shows, [`${dir}/tcni_from_pod`, `${dir}/tcni_to_vxlan`].map((f) => [`show.prog:${n.pinDir}/${f}`, ['-j', 'prog', 'show', 'pinned', `${n.pinDir}/${f}`]]), 'loaded programs only, not a load in progress');
  const listsAll = (text: string) => /\b(prog|map) (show|list)\b(?! pinned)/.test(text);
  for (const probe of [...Object.values(q), ...Object.values(more)]) {
    if (probe.mech === 'exec') assert.ok(!listsAll(probe.argv.join(' ')), `no listing of every object: ${probe.argv.join(' ')}`);
  }
  assert.ok(!Object.keys(vxlan.node!.observeMore!(c, { pins: null })).some((k) => k.startsWith('show.')), 'nothing pinned: nothing to show');
});

test('node plan routes: the remote blocks and their nodes, for status', () => {
  assert.deepEqual(vxlan.node!.routes!(steady([SELF, N2, N3])), [{ dst: '10.244.2.0/24', via: '198.18.0.12' }, { dst: '10.244.3.0/24', via: '198.18.0.13' }]);
});

test('late-bound values: the token stands for four bytes of the entry, in the update and in its probe', () => {
  const e = endpointEntry({ ip: '10.244.1.7', ifindex: { ifindexOf: 'tcx' }, podMac: '02:00:00:00:00:07', hostMac: '02:00:00:00:01:07' });
  assert.equal(JSON.parse(lookupJson(e)).value[0], ifindexToken('tcx'));
  assert.equal(JSON.parse(lookupJson(e)).value.length, 13, 'one token for four bytes, then 12 MAC bytes');
  assert.equal(mapPath({ pinDir: '/p' }, ENDPOINTS), '/p/maps/testcni_eps');
});
