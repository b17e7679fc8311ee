// loadAgentConfig: a YAML/JSON file, flags on top, defaults, and clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { loadAgentConfig, AgentConfigError, AGENT_DEFAULTS, AGENT_HELP } from '../../agent/config.ts';

const BASE = ['--underlay-ip', '198.18.0.11', '--etcd-endpoints', 'http://198.18.0.1:2379'];

function tempFile(t: { after: (fn: () => void) => void }, name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tcagentcfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const refuses = (argv: string[], msg: RegExp) =>
  assert.throws(() => loadAgentConfig(argv, 'host-a'), (e: unknown) => e instanceof AgentConfigError && msg.test((e as Error).message), `${argv.join(' ')} -> ${msg}`);

test('defaults: only an underlay address and etcd endpoints are needed', () => {
  const c = loadAgentConfig(BASE, 'host-a');
  assert.equal(c.nodeName, 'host-a', 'the host name by default');
  assert.equal(c.underlayIp, '198.18.0.11');
  assert.deepEqual(c.etcd, {
    endpoints: ['http://198.18.0.1:2379'], caFile: null, certFile: null, keyFile: null,
    prefix: AGENT_DEFAULTS.etcdPrefix, dialTimeoutMs: 2000, requestTimeoutMs: 2000,
  });
  assert.equal(c.network, 'testcni');
  assert.equal(c.clusterSubnet, '10.244.0.0/16');
  assert.equal(c.blockSize, 24);
  assert.equal(c.mode, 'host-gw');
  assert.equal(c.stateDir, '/var/lib/testcni');
  assert.equal(c.socket, '/run/testcni/agent.sock');
  assert.equal(c.metricsAddress, '127.0.0.1:9603');
  assert.equal(c.leaseTtlSeconds, 10);
  assert.equal(c.resyncSeconds, 30);
  assert.equal(c.routeProtocol, 151);
  assert.equal(c.cniConfDir, null);
  assert.equal(c.cniConfName, '10-testcni.conflist');
  assert.equal(c.logLevel, 'info');
});

test('flags: every node-scoped path and setting can be given', () => {
  const c = loadAgentConfig([
    ...BASE, '--node-name', 'n7', '--underlay-interface', 'eth9', '--etcd-prefix', '/lab1/', '--etcd-ca', '/pki/ca.pem',
    '--etcd-cert', '/pki/c.pem', '--etcd-key', '/pki/k.pem', '--cluster-subnet', '10.100.0.0/20', '--block-size', '26',
    '--network', 'lab', '--state-dir', '/tmp/s', '--socket', '/tmp/s/a.sock', '--metrics-address', 'off', '--cni-conf-dir', '/tmp/net.d',
    '--lease-ttl', '3', '--resync', '5', '--route-protocol', '201', '--log-level', 'debug',
  ], 'host-a');
  assert.equal(c.nodeName, 'n7');
  assert.equal(c.underlayInterface, 'eth9');
  assert.equal(c.etcd.prefix, '/lab1', 'a trailing slash is dropped: keys are <prefix>/nodes/...');
  assert.deepEqual([c.etcd.caFile, c.etcd.certFile, c.etcd.keyFile], ['/pki/ca.pem', '/pki/c.pem', '/pki/k.pem']);
  assert.equal(c.clusterSubnet, '10.100.0.0/20');
  assert.equal(c.blockSize, 26);
  assert.equal(c.network, 'lab');
  assert.deepEqual([c.stateDir, c.socket, c.cniConfDir], ['/tmp/s', '/tmp/s/a.sock', '/tmp/net.d']);
  assert.equal(c.metricsAddress, null, '"off" disables the metrics server');
  assert.deepEqual([c.leaseTtlSeconds, c.resyncSeconds, c.routeProtocol], [3, 5, 201]);
  assert.equal(c.logLevel, 'debug');
});

test('file (YAML): read, and every flag wins over it', (t) => {
  const file = tempFile(t, 'agent.yaml', [
    'nodeName: from-file',
    'underlayIp: 198.18.0.50',
    'etcd:',
    '  endpoints:',
    '    - http://198.18.0.1:2379',
    '    - http://198.18.0.2:2379',
    '  prefix: /filecluster',
    '  caFile: /file/ca.pem',
    'clusterSubnet: 10.96.0.0/12',
    'blockSize: 26',
    'stateDir: /file/state',
    'socket: /file/agent.sock',
    'metricsAddress: 0.0.0.0:9700',
    'leaseTtlSeconds: 7',
    'logLevel: warn',
    'cniConfName: 05-lab.conflist',
    '',
  ].join('\n'));
  const c = loadAgentConfig(['--config', file], 'host-a');
  assert.equal(c.nodeName, 'from-file');
  assert.equal(c.underlayIp, '198.18.0.50');
  assert.deepEqual(c.etcd.endpoints, ['http://198.18.0.1:2379', 'http://198.18.0.2:2379']);
  assert.equal(c.etcd.prefix, '/filecluster');
  assert.equal(c.etcd.caFile, '/file/ca.pem');
  assert.equal(c.clusterSubnet, '10.96.0.0/12');
  assert.equal(c.blockSize, 26);
  assert.deepEqual([c.stateDir, c.socket, c.metricsAddress], ['/file/state', '/file/agent.sock', '0.0.0.0:9700']);
  assert.equal(c.leaseTtlSeconds, 7);
  assert.equal(c.logLevel, 'warn');
  assert.equal(c.cniConfName, '05-lab.conflist');

  const o = loadAgentConfig(['--config', file, '--node-name', 'flag', '--underlay-ip', '198.18.0.60', '--etcd-endpoints', 'http://198.18.0.3:2379',
    '--etcd-prefix', '/flagcluster', '--block-size', '28', '--lease-ttl', '2', '--log-level', 'error', '--socket', '/flag.sock'], 'host-a');
  assert.equal(o.nodeName, 'flag');
  assert.equal(o.underlayIp, '198.18.0.60');
  assert.deepEqual(o.etcd.endpoints, ['http://198.18.0.3:2379']);
  assert.equal(o.etcd.prefix, '/flagcluster');
  assert.equal(o.etcd.caFile, '/file/ca.pem', 'what no flag names stays from the file');
  assert.equal(o.blockSize, 28);
  assert.equal(o.leaseTtlSeconds, 2);
  assert.equal(o.logLevel, 'error');
  assert.equal(o.socket, '/flag.sock');
  assert.equal(o.stateDir, '/file/state');
});

test('file: JSON works too (YAML reads it), endpoints may be one comma-separated string', (t) => {
  const file = tempFile(t, 'agent.json', JSON.stringify({ underlayIp: '198.18.0.9', etcd: { endpoints: 'http://a:2379, http://b:2379' }, resyncSeconds: '12' }));
  const c = loadAgentConfig(['--config', file], 'h');
  assert.deepEqual(c.etcd.endpoints, ['http://a:2379', 'http://b:2379']);
  assert.equal(c.resyncSeconds, 12);
  const empty = tempFile(t, 'empty.yaml', '');
  assert.equal(loadAgentConfig(['--config', empty, ...BASE], 'h').nodeName, 'h', 'an empty file is no settings');
});

test('errors: missing etcd endpoints, bad subnet, block size out of range, other modes', () => {
  refuses(['--underlay-ip', '198.18.0.11'], /no etcd endpoints/);
  refuses(['--underlay-ip', '198.18.0.11', '--etcd-endpoints', ' , '], /no etcd endpoints/);
  refuses([...BASE, '--cluster-subnet', '10.244.0.0'], /clusterSubnet "10\.244\.0\.0" is not an IPv4 CIDR/);
  refuses([...BASE, '--cluster-subnet', '10.244.0.0/33'], /not an IPv4 CIDR/);
  refuses([...BASE, '--cluster-subnet', 'fd00::/64'], /not an IPv4 CIDR/);
  refuses([...BASE, '--block-size', '15'], /blockSize \/15 does not fit in 10\.244\.0\.0\/16/);
  refuses([...BASE, '--block-size', '31'], /blockSize \/31 does not fit/);
  refuses([...BASE, '--block-size', '24.5'], /blockSize must be a positive integer/);
  refuses([...BASE, '--block-size', 'big'], /blockSize must be a positive integer/);
  refuses([...BASE, '--lease-ttl', '0'], /leaseTtlSeconds must be a positive integer/);
  refuses([...BASE, '--mode', 'bgp'], /mode bgp is not one of host-gw/);
  refuses([...BASE, '--log-level', 'trace'], /logLevel trace is not debug, info, warn or error/);
  // An interface without an IPv4 address (lo's is internal) and no address given.
  refuses(['--underlay-interface', 'lo', '--etcd-endpoints', 'http://x:2379'], /no underlay address/);
  // The subnet is normalised, a block as big as the subnet is allowed.
  const c = loadAgentConfig([...BASE, '--cluster-subnet', '10.244.3.7/24', '--block-size', '24'], 'h');
  assert.equal(c.clusterSubnet, '10.244.3.0/24');
});

test('errors: an unknown flag, a missing or unreadable config file are config errors, not crashes', (t) => {
  refuses([...BASE, '--etcd-endpoint', 'http://x:2379'], /--etcd-endpoint/);
  refuses([...BASE, '--config', '/nonexistent/agent.yaml'], /\/nonexistent\/agent\.yaml/);
  const bad = tempFile(t, 'bad.yaml', 'etcd: [unclosed\n');
  refuses(['--config', bad, ...BASE], /bad\.yaml/);
});

test('--help text names every flag the parser accepts', () => {
  for (const flag of ['--config', '--node-name', '--underlay-interface', '--underlay-ip', '--etcd-endpoints', '--etcd-ca', '--etcd-cert',
    '--etcd-key', '--etcd-prefix', '--cluster-subnet', '--block-size', '--mode', '--network', '--state-dir', '--socket',
    '--metrics-address', '--cni-conf-dir', '--lease-ttl', '--resync', '--route-protocol', '--log-level']) {
    assert.ok(AGENT_HELP.includes(flag), flag);
  }
});

test('networkConfig: the mode\'s own keys reach the CNI config the agent writes, validated like the plugin does', (t) => {
  const file = tempFile(t, 'agent.yaml', ['networkConfig:', '  bridge: br-lab', '  mtu: 1400', ''].join('\n'));
  const c = loadAgentConfig(['--config', file, ...BASE, '--network', 'lab', '--socket', '/run/x/a.sock', '--state-dir', '/run/x'], 'h');
  assert.deepEqual(c.pluginEntry, {
    type: 'testcni', mode: 'host-gw', subnet: '10.244.0.0/16', stateDir: '/run/x', bridge: 'br-lab', mtu: 1400,
    ipam: { type: 'cluster', agentSocket: '/run/x/a.sock' },
  });
  assert.equal(c.networkConfig.name, 'lab');
  assert.deepEqual(c.networkConfig.modeConfig, { bridge: 'br-lab' });
  assert.equal(c.networkConfig.mtu, 1400);
  const bad = tempFile(t, 'bad.yaml', ['networkConfig:', '  bridge: 7', ''].join('\n'));
  refuses(['--config', bad, ...BASE], /network config: invalid network config: bridge/);
  const foreign = tempFile(t, 'foreign.yaml', ['networkConfig:', '  vni: 7', ''].join('\n'));
  refuses(['--config', foreign, ...BASE], /unsupported field: vni/);
  const owned = tempFile(t, 'owned.yaml', ['networkConfig:', '  subnet: 10.0.0.0/8', ''].join('\n'));
  refuses(['--config', owned, ...BASE], /networkConfig\.subnet: set by the agent/);
});

test('a mode on the node network: the cluster subnet is the node network, its range goes into the CNI config, no block size applies', (t) => {
  const file = tempFile(t, 'mv.yaml', ['networkConfig:', '  macvlan: {mode: private}', '  ipam: {rangeStart: 198.18.0.128, rangeEnd: 198.18.0.254}', ''].join('\n'));
  // --block-size 16 would not fit in a /24 of blocks: here there are none.
  const c = loadAgentConfig(['--config', file, ...BASE, '--mode', 'macvlan', '--cluster-subnet', '198.18.0.0/24', '--block-size', '16', '--socket', '/run/x/a.sock', '--state-dir', '/run/x'], 'h');
  assert.deepEqual(c.pluginEntry, {
    type: 'testcni', mode: 'macvlan', subnet: '198.18.0.0/24', stateDir: '/run/x', macvlan: { mode: 'private' },
    ipam: { rangeStart: '198.18.0.128', rangeEnd: '198.18.0.254', type: 'cluster', agentSocket: '/run/x/a.sock' },
  });
  assert.deepEqual([c.networkConfig.ipam.block, c.networkConfig.ipam.rangeStart, c.networkConfig.ipam.gateway], ['198.18.0.0/24', '198.18.0.128', '198.18.0.1']);
  refuses([...BASE, '--cluster-subnet', '198.18.0.0/24', '--block-size', '16'], /blockSize \/16 does not fit/);
  const outside = tempFile(t, 'out.yaml', ['networkConfig:', '  ipam: {rangeStart: 198.18.1.1}', ''].join('\n'));
  refuses(['--config', outside, ...BASE, '--mode', 'macvlan', '--cluster-subnet', '198.18.0.0/24'], /ipam\.rangeStart/);
});
