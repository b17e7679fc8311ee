// The BIRD view model (pure): peers, names and order, session kinds, filters per ipipMode,
// reflectors, secrets, and every bad setting refused with code 7 naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { birdView, peerName, birdNodeOf, BIRD_ROUTE_PROTOCOL, type BirdInput, type BgpSettings } from '../../planner/bird/view.ts';
import { CniError, Code } from '../../model/errors.ts';

const self = { name: 'n1', underlayIp: '198.18.0.11', underlaySubnet: '198.18.0.0/24', blocks: ['10.244.1.0/24'] };
const node = (i: number, ip = `198.18.0.${10 + i}`) => ({ name: `n${i}`, underlayIp: ip, blocks: [`10.244.${i}.0/24`] });
const input = (bgp: Partial<BgpSettings> = {}, nodes = [node(1), node(2), node(3)]): BirdInput => ({ self, nodes, bgp: { ipipMode: 'always', ...bgp } });

test('a full mesh: one session per other node, sorted by address, named after it', () => {
  const v = birdView(input({}, [node(3), node(1), node(2, '198.18.0.2'), node(12, '198.18.0.112')]));
  assert.deepEqual(v.peers.map((p) => p.name), ['node_198_18_0_2', 'node_198_18_0_13', 'node_198_18_0_112']);
  assert.deepEqual(v.peers.map((p) => [p.kind, p.template, p.asn, p.description]), [
    ['node', 'cluster_peer', 64512, 'node n2'],
    ['node', 'cluster_peer', 64512, 'node n3'],
    ['node', 'cluster_peer', 64512, 'node n12'],
  ]);
  assert.equal(v.routerId, '198.18.0.11');
  assert.deepEqual(v.ownBlocks, ['10.244.1.0/24']);
  assert.equal(v.routeProtocol, BIRD_ROUTE_PROTOCOL);
  assert.deepEqual(v.secrets, []);
});

test('registry records that cannot be peers are skipped: this node, bad addresses, a second record for one address', () => {
  const v = birdView(input({}, [
    node(1),
    { name: 'bad', underlayIp: '300.1.1.1', blocks: ['10.244.9.0/24'] },
    { name: 'self-by-address', underlayIp: '198.18.0.11', blocks: ['10.244.8.0/24'] },
    node(2),
    { name: 'z-duplicate', underlayIp: '198.18.0.12', blocks: ['10.244.7.0/24'] },
    { name: 'bad-block', underlayIp: '198.18.0.14', blocks: ['10.244.4.1/24', 'x'] },
  ]));
  assert.deepEqual(v.peers.map((p) => p.description), ['node n2', 'node bad-block']);
  const bgpImport = v.filters.find((f) => f.name === 'bgp_import')!;
  assert.deepEqual(bgpImport.statements, ['if net ~ [ 10.244.2.0/24 ] then accept;', 'reject;']);
});

test('peers on the underlay subnet are direct sessions; beyond it multihop with recursive next hops', () => {
  const v = birdView(input({}, [node(2), node(3, '198.19.0.13')]));
  const [near, far] = v.peers;
  assert.deepEqual([near!.options, near!.channel], [['direct;'], ['ipv4 { gateway direct; };']]);
  assert.deepEqual([far!.options, far!.channel], [['multihop;'], ['ipv4 { gateway recursive; };']]);
  assert.ok(v.kernel.options.includes('learn;'), 'kernel routes are learned to resolve next hops beyond the subnet');
});

test('kernel routes per ipipMode: through the tunnel, plainly routed, or through the tunnel beyond the subnet', () => {
  const statements = (ipipMode: BgpSettings['ipipMode']) => birdView(input({ ipipMode })).filters.find((f) => f.name === 'kernel_export')!.statements.filter((s) => !s.startsWith('#'));
  assert.deepEqual(statements('always'), ['if source != RTS_BGP then reject;', 'nh = bgp_next_hop;', 'ifname = "tunl0";', 'onlink = true;', 'gw = nh;', 'accept;']);
  assert.deepEqual(statements('never'), ['if source != RTS_BGP then reject;', 'accept;']);
  assert.deepEqual(statements('crossSubnet'), ['if source != RTS_BGP then reject;', 'if bgp_next_hop ~ 198.18.0.0/24 then accept;', 'nh = bgp_next_hop;', 'ifname = "tunl0";', 'onlink = true;', 'gw = nh;', 'accept;']);
  const tuned = birdView(input({ tunnelDevice: 'ipip0' }));
  assert.ok(tuned.filters.find((f) => f.name === 'kernel_export')!.statements.includes('ifname = "ipip0";'));
  assert.equal(tuned.directInterfaces, '-"ipip0", "*"');
});

test('a route reflector: clients get rr client and the cluster id, other reflectors are plain iBGP', () => {
  const v = birdView(input({ routeReflector: { clusterId: '1.1.1.1' }, reflectors: ['198.18.0.11', '198.18.0.12', '198.18.0.250'] }, [node(2), node(3), node(4)]));
  assert.deepEqual(v.peers.map((p) => [p.name, p.options]), [
    ['rr_198_18_0_12', ['direct;']],
    ['rr_198_18_0_250', ['direct;']],
    ['node_198_18_0_13', ['direct;', 'rr client;', 'rr cluster id 1.1.1.1;']],
    ['node_198_18_0_14', ['direct;', 'rr client;', 'rr cluster id 1.1.1.1;']],
  ]);
  assert.equal(birdView(input({ routeReflector: { clusterId: 7 } })).peers[0]!.options.at(-1), 'rr cluster id 7;');
});

test('a reflector client peers with the reflectors only', () => {
  const v = birdView(input({ reflectors: ['198.18.0.13', '198.18.0.12'] }, [node(2), node(3), node(4), node(5)]));
  assert.deepEqual(v.peers.map((p) => [p.name, p.description, p.options]), [
    ['rr_198_18_0_12', 'reflector n2', ['direct;']],
    ['rr_198_18_0_13', 'reflector n3', ['direct;']],
  ]);
  // It still accepts every registered node's block: the reflectors pass them on.
  assert.deepEqual(v.filters.find((f) => f.name === 'bgp_import')!.statements[0], 'if net ~ [ 10.244.2.0/24, 10.244.3.0/24, 10.244.4.0/24, 10.244.5.0/24 ] then accept;');
});

test('external peers: eBGP sessions after the cluster\'s, import nothing, passwords become secrets', () => {
  const v = birdView(input({ meshPassword: 'mesh pw', externalPeers: [{ address: '203.0.113.1', asn: 65002, password: 'ab' }, { address: '198.18.0.30', asn: 65001 }] }, [node(2)]));
  assert.deepEqual(v.peers.map((p) => [p.name, p.template, p.asn, p.options]), [
    ['node_198_18_0_12', 'cluster_peer', 64512, ['direct;', 'password "mesh pw";']],
    ['peer_198_18_0_30', 'external_peer', 65001, ['direct;']],
    ['peer_203_0_113_1', 'external_peer', 65002, ['multihop;', 'password "ab";']],
  ]);
  assert.deepEqual(v.secrets, ['mesh pw', 'ab']);
  assert.deepEqual(v.filters.find((f) => f.name === 'bgp_export_external')!.statements, ['if proto = "blocks" then accept;', 'reject;']);
});

test('a node alone: no sessions, its block still announced, no empty prefix sets', () => {
  const v = birdView(input({}, []));
  assert.deepEqual(v.peers, []);
  for (const f of v.filters) for (const s of f.statements) assert.ok(!s.includes('[  ]') && !s.includes('[ ]'), s);
  assert.deepEqual(v.filters.find((f) => f.name === 'bgp_import')!.statements, ['reject;']);
});

test('defaults: ASN 64512, graceful restart on, kernel table 254 metric 32, production timers', () => {
  const v = birdView(input());
  assert.equal(v.asn, 64512);
  assert.deepEqual(v.internal.options, ['graceful restart on;', 'graceful restart time 120;']);
  assert.deepEqual([v.kernel.table, v.kernel.metric], [254, 32]);
  assert.ok(v.internal.timers.includes('hold time 90;'));
  const off = birdView(input({ gracefulRestart: { enabled: false }, asn: 4200000000 }));
  assert.deepEqual(off.internal.options, ['graceful restart off;']);
  assert.ok(off.kernel.options.includes('graceful restart off;'));
  assert.equal(off.asn, 4200000000);
});

test('names and registry records', () => {
  assert.equal(peerName('node', '198.18.0.12'), 'node_198_18_0_12');
  assert.equal(peerName('reflector', '10.0.0.1'), 'rr_10_0_0_1');
  assert.equal(peerName('external', '10.0.0.1'), 'peer_10_0_0_1');
  assert.deepEqual(birdNodeOf({ name: 'a', underlayIp: '198.18.0.1', block: '10.244.0.0/24' }), { name: 'a', underlayIp: '198.18.0.1', blocks: ['10.244.0.0/24'] });
  assert.deepEqual(birdNodeOf({ name: 'a', underlayIp: '198.18.0.1', block: '' }).blocks, []);
  assert.equal(birdView({ ...input(), self: { ...self, name: 'evil"name\n' } }).node, 'evil_name_');
});

const bad: [string, Partial<BgpSettings> | ((i: BirdInput) => BirdInput), string][] = [
  ['ASN 0', { asn: 0 }, 'bgp.asn'],
  ['ASN above 4294967295', { asn: 4294967296 }, 'bgp.asn'],
  ['ASN not an integer', { asn: 1.5 }, 'bgp.asn'],
  ['unknown ipipMode', { ipipMode: 'sometimes' as never }, 'bgp.ipipMode'],
  ['external peer address outside IPv4', { externalPeers: [{ address: 'fe80::1', asn: 65001 }] }, 'bgp.externalPeers[0].address'],
  ['external peer address out of range', { externalPeers: [{ address: '198.18.0.300', asn: 65001 }] }, 'bgp.externalPeers[0].address'],
  ['external peer is this node', { externalPeers: [{ address: '198.18.0.11', asn: 65001 }] }, 'bgp.externalPeers[0].address'],
  ['external peer is a cluster peer', { externalPeers: [{ address: '198.18.0.12', asn: 65001 }] }, 'bgp.externalPeers[0].address'],
  ['external peer ASN 0', { externalPeers: [{ address: '198.18.0.30', asn: 0 }] }, 'bgp.externalPeers[0].asn'],
  ['two external peers at one address', { externalPeers: [{ address: '198.18.0.30', asn: 1 }, { address: '198.18.0.30', asn: 2 }] }, 'bgp.externalPeers[1].address'],
  ['reflector not an address', { reflectors: ['rr1'] }, 'bgp.reflectors[0]'],
  ['reflector listed twice', { reflectors: ['198.18.0.2', '198.18.0.2'] }, 'bgp.reflectors[1]'],
  ['cluster id not an address or number', { routeReflector: { clusterId: 'abc' } }, 'bgp.routeReflector.clusterId'],
  ['cluster id 0', { routeReflector: { clusterId: 0 } }, 'bgp.routeReflector.clusterId'],
  ['hold time 2', { timers: { holdTime: 2 } }, 'bgp.timers.holdTime'],
  ['keepalive not below hold time', { timers: { holdTime: 9, keepaliveTime: 9 } }, 'bgp.timers.keepaliveTime'],
  ['error wait max below min', { timers: { errorWaitTime: [5, 1] } }, 'bgp.timers.errorWaitTime'],
  ['restart time above 4095', { gracefulRestart: { restartTime: 5000 } }, 'bgp.gracefulRestart.restartTime'],
  ['kernel table 0', { kernel: { table: 0 } }, 'bgp.kernel.table'],
  ['tunnel device name too long', { tunnelDevice: 'a-very-long-tunnel' }, 'bgp.tunnelDevice'],
  ['tunnel device name with a quote', { tunnelDevice: 'tun"0' }, 'bgp.tunnelDevice'],
  ['underlay subnet without this node', (i) => ({ ...i, self: { ...i.self, underlaySubnet: '10.0.0.0/8' } }), 'self.underlaySubnet'],
  ['underlay subnet with host bits', (i) => ({ ...i, self: { ...i.self, underlaySubnet: '198.18.0.1/24' } }), 'self.underlaySubnet'],
  ['own block not a network', (i) => ({ ...i, self: { ...i.self, blocks: ['10.244.1.1/24'] } }), 'self.blocks[0]'],
];

for (const [name, change, field] of bad) {
  test(`refused with code 7 naming ${field}: ${name}`, () => {
    const i = typeof change === 'function' ? change(input()) : input(change);
    assert.throws(() => birdView(i), (e: unknown) => e instanceof CniError && e.code === Code.InvalidConfig && e.message.endsWith(field) && e.details.startsWith(`${field}:`));
  });
}

test('a bad password is refused without showing it', () => {
  for (const pw of ['with "quote"', 'new\nline', '', 'x'.repeat(81), 'tab\there', 'ümlaut']) {
    for (const bgp of [{ meshPassword: pw }, { externalPeers: [{ address: '198.18.0.30', asn: 1, password: pw }] }]) {
      assert.throws(() => birdView(input(bgp)), (e: unknown) => {
        const err = e as CniError;
        return err.code === Code.InvalidConfig && /password/i.test(err.message) && (pw === '' || (!err.message.includes(pw) && !err.details.includes(pw)));
      }, JSON.stringify(pw));
    }
  }
});
