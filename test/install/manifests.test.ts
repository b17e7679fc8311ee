// testcni manifests: every rendered object parses back and validates against the Kubernetes
// schema (kubernetes-models), and says what an operator relies on: the agent's memory limit
// and heap, probes on the address the agent serves them, host network and mounts, the install
// sidecar, a ConfigMap the agent and the plugin both accept, the etcd TLS Secret.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseAllDocuments } from 'yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { renderManifests, MANIFEST_DEFAULTS, ManifestError, type ManifestOptions } from '../../install/manifests.ts';
import { manifestOptions } from '../../install/manifests-cli.ts';
import { loadAgentConfig } from '../../agent/config.ts';
import { checkConflist } from '../../install/conflist.ts';
import { MODES } from '../../planner/registry.ts';
import { NODE_SECRETS_DIR } from '../../install/manifests.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  'apps/v1/DaemonSet': DaemonSet, 'v1/ServiceAccount': ServiceAccount, 'v1/ConfigMap': ConfigMap, 'v1/Secret': Secret,
};

function options(extra: Partial<ManifestOptions> = {}): ManifestOptions {
  const o = manifestOptions(['--etcd-endpoints', 'http://10.0.0.10:2379,http://10.0.0.11:2379']);
  assert.notEqual(o, 'help');
  return { ...(o as ManifestOptions), ...extra };
}

const TLS = { ca: '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n', cert: '-----BEGIN CERTIFICATE-----\nME\n-----END CERTIFICATE-----\n', key: '-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n' };

/** Parses the stream back; every document validated by its Kubernetes model. */
function parseAndValidate(text: string): Obj[] {
  const docs = parseAllDocuments(text);
  assert.ok(Array.isArray(docs));
  return docs.map((d) => {
    assert.deepEqual([...d.errors, ...d.warnings], [], 'valid YAML');
    const obj = d.toJS() as Obj;
    const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
    assert.ok(Model, `a known kind: ${obj.apiVersion} ${obj.kind}`);
    new Model(obj as never).validate(); // throws with the schema's complaints
    return obj;
  });
}

const byKind = (objs: Obj[], kind: string) => objs.find((o) => o.kind === kind)!;

test('the default manifests validate against the Kubernetes schema: ServiceAccount, ConfigMap, DaemonSet (no Secret without TLS)', () => {
  const objs = parseAndValidate(renderManifests(options()));
  assert.deepEqual(objs.map((o) => o.kind), ['ServiceAccount', 'ConfigMap', 'DaemonSet']);
  for (const o of objs) assert.equal(o.metadata.namespace, 'kube-system');
});

test('the schema check can fail: a wrong type in the rendered DaemonSet is refused', () => {
  const ds = byKind(parseAndValidate(renderManifests(options())), 'DaemonSet');
  ds.spec.template.spec.containers[0].resources.limits.memory = { mebibytes: 256 };
  assert.throws(() => new DaemonSet(ds as never).validate(), /resources\/limits\/memory/);
  delete ds.spec.selector;
  assert.throws(() => new DaemonSet(ds as never).validate(), /selector/);
});

test('the agent: memory limit with a heap to match, probes where it serves them, host network, privileges, host mounts', () => {
  const objs = parseAndValidate(renderManifests(options({ agentMemoryMi: 300, metricsPort: 9700 })));
  const pod = byKind(objs, 'DaemonSet').spec.template.spec;
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.priorityClassName, 'system-node-critical');
  assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }], 'runs on every node, not-ready ones included (the CNI makes them ready)');
  assert.equal(pod.automountServiceAccountToken, false);
  const [agent] = pod.containers;
  assert.equal(agent.name, 'agent');
  assert.equal(agent.resources.limits.memory, '300Mi');
  assert.equal(agent.resources.requests.memory, '300Mi');
  assert.deepEqual(agent.env.find((e: Obj) => e.name === 'NODE_OPTIONS'), { name: 'NODE_OPTIONS', value: '--max-old-space-size=180' }, '60% of the limit');
  assert.deepEqual(agent.env.find((e: Obj) => e.name === 'NODE_NAME').valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
  assert.deepEqual(agent.command.slice(1), ['agent', '--config', '/etc/testcni/agent.yaml', '--node-name', '$(NODE_NAME)']);
  assert.deepEqual(agent.readinessProbe.httpGet, { host: '127.0.0.1', port: 9700, path: '/healthz' });
  assert.deepEqual(agent.livenessProbe.httpGet, { host: '127.0.0.1', port: 9700, path: '/livez' });
  assert.deepEqual(agent.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] }, 'host-gw: its routes and sysctls, nothing more');

  // The probes reach what the agent's config makes it serve.
  const cm = byKind(objs, 'ConfigMap');
  let cfg0: ReturnType<typeof loadAgentConfig> | null = null;
  const dir = mkdtempSync(join(tmpdir(), 'tcman-'));
  try {
    writeFileSync(join(dir, 'agent.yaml'), cm.data['agent.yaml']);
    const cfg = loadAgentConfig(['--config', join(dir, 'agent.yaml'), '--node-name', 'n1', '--underlay-ip', '198.18.0.9'], 'host');
    cfg0 = cfg;
    assert.equal(cfg.metricsAddress, '127.0.0.1:9700');
    assert.deepEqual(cfg.etcd.endpoints, ['http://10.0.0.10:2379', 'http://10.0.0.11:2379']);
    assert.equal(cfg.cniConfDir, null, 'the agent does not write the conflist: the install sidecar does');
    const conf = checkConflist(cm.data['10-testcni.conflist'], 'ConfigMap');
    assert.deepEqual(JSON.parse(cm.data['10-testcni.conflist']).plugins[0], cfg.pluginEntry, 'the plugin entry the agent itself would write');
    assert.equal(conf.ipam.type, 'cluster');
    assert.equal(conf.ipam.agentSocket, cfg.socket, 'the plugin asks the agent where it listens');
    assert.equal(conf.stateDir, cfg.stateDir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const hostPaths = Object.fromEntries(pod.volumes.filter((v: Obj) => v.hostPath).map((v: Obj) => [v.name, v.hostPath.path]));
  assert.deepEqual(Object.values(hostPaths).sort(), ['/etc/cni/net.d', '/opt/cni/bin', '/proc/sys/net', '/run/testcni', '/var/lib/cni', '/var/lib/testcni']);
  const mountsOf = (c: Obj) => Object.fromEntries(c.volumeMounts.map((m: Obj) => [m.mountPath, hostPaths[m.name] ?? m.name]));
  // Paths the conflist names are mounted at the same path, so they mean the same on the node.
  assert.deepEqual(mountsOf(agent), {
    '/etc/testcni': 'config', '/var/lib/testcni': '/var/lib/testcni', '/var/lib/cni': '/var/lib/cni', '/run/testcni': '/run/testcni',
    // the node's sysctls, where runc allows a mount (not inside /proc); agent.yaml's procSys points there
    '/host/proc/sys/net': '/proc/sys/net',
  });
  assert.equal(cfg0!.procSys, '/host/proc/sys');
});

test('testcni install runs as a sidecar init container, writing into the host dirs, gated on the agent', () => {
  const pod = byKind(parseAndValidate(renderManifests(options())), 'DaemonSet').spec.template.spec;
  assert.equal(pod.initContainers.length, 1);
  const [inst] = pod.initContainers;
  assert.equal(inst.restartPolicy, 'Always', 'a sidecar: it runs beside the agent, so it can wait for it');
  const args = inst.command.slice(1);
  const flag = (f: string) => args[args.indexOf(f) + 1];
  assert.equal(args[0], 'install');
  assert.ok(args.includes('--keep-running'));
  assert.ok(!args.includes('--no-wait'), 'the conflist waits for the agent');
  const hostPaths = Object.fromEntries(pod.volumes.filter((v: Obj) => v.hostPath).map((v: Obj) => [v.name, v.hostPath.path]));
  const mountFor = (path: string) => inst.volumeMounts.find((m: Obj) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
  assert.equal(hostPaths[mountFor(flag('--bin-dir')).name], '/opt/cni/bin');
  assert.equal(hostPaths[mountFor(flag('--conf-dir')).name], '/etc/cni/net.d');
  assert.equal(mountFor(flag('--conflist')).name, 'config');
  assert.equal(hostPaths[mountFor('/run/testcni/agent.sock').name], '/run/testcni', 'it reaches the agent socket');
  assert.ok(inst.resources.limits.memory);
  assert.deepEqual(inst.securityContext.capabilities, { drop: ['ALL'] });
});

test('with etcd TLS: a Secret with the PEM files, mounted into the agent only, named in its config', () => {
  const objs = parseAndValidate(renderManifests(options({ etcdEndpoints: ['https://10.0.0.10:2379'], etcdTls: TLS })));
  assert.deepEqual(objs.map((o) => o.kind), ['ServiceAccount', 'ConfigMap', 'Secret', 'DaemonSet']);
  const secret = byKind(objs, 'Secret');
  assert.deepEqual(Object.fromEntries(Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v as string, 'base64').toString()])), { 'ca.crt': TLS.ca, 'tls.crt': TLS.cert, 'tls.key': TLS.key });
  const pod = byKind(objs, 'DaemonSet').spec.template.spec;
  const vol = pod.volumes.find((v: Obj) => v.secret);
  assert.equal(vol.secret.secretName, secret.metadata.name);
  const mount = pod.containers[0].volumeMounts.find((m: Obj) => m.name === vol.name);
  assert.equal(mount.readOnly, true);
  assert.ok(!pod.initContainers[0].volumeMounts.some((m: Obj) => m.name === vol.name), 'the install container gets no credentials');
  const agentYaml = byKind(objs, 'ConfigMap').data['agent.yaml'] as string;
  for (const f of ['ca.crt', 'tls.crt', 'tls.key']) assert.ok(agentYaml.includes(`${mount.mountPath}/${f}`), `${f} is where the Secret is mounted`);
});

test('a config or certificate change changes the pod template (the DaemonSet rolls)', () => {
  const hash = (o: ManifestOptions) => byKind(parseAndValidate(renderManifests(o)), 'DaemonSet').spec.template.metadata.annotations['testcni.dev/config-sha256'];
  const base = hash(options());
  assert.equal(hash(options()), base, 'same inputs, same hash');
  assert.notEqual(hash(options({ clusterSubnet: '10.250.0.0/16' })), base);
  assert.notEqual(hash(options({ etcdTls: TLS })), hash(options({ etcdTls: { ...TLS, key: 'other' } })));
});

test('chaining reference plugins: the conflist lists them after testcni at cniVersion 1.0.0', () => {
  const cm = byKind(parseAndValidate(renderManifests(options({ chain: ['portmap', 'bandwidth'] }))), 'ConfigMap');
  const conflist = JSON.parse(cm.data['10-testcni.conflist']);
  assert.equal(conflist.cniVersion, '1.0.0');
  assert.deepEqual(conflist.plugins.map((p: Obj) => p.type), ['testcni', 'portmap', 'bandwidth']);
  assert.deepEqual(conflist.plugins[1].capabilities, { portMappings: true });
});

test('values that would break the YAML are quoted, not interpreted', () => {
  const objs = parseAndValidate(renderManifests(options({ etcdPrefix: '/a: b #c', network: 'true' })));
  const cfg = byKind(objs, 'ConfigMap').data;
  assert.match(cfg['agent.yaml'], /prefix: "\/a: b #c"/);
  assert.equal(JSON.parse(cfg['10-testcni.conflist']).name, 'true');
});

test('bad options are refused with the reason', () => {
  const refuse = (extra: Partial<ManifestOptions>, re: RegExp) => assert.throws(() => renderManifests(options(extra)), (e: Error) => e instanceof ManifestError && re.test(e.message));
  refuse({ etcdEndpoints: [] }, /no etcd endpoints/);
  refuse({ etcdEndpoints: ['https://10.0.0.1:2379'] }, /https etcd endpoints need --etcd-ca/);
  refuse({ etcdEndpoints: ['10.0.0.1:2379'] }, /not http\(s\):\/\/host:port/);
  refuse({ namespace: 'Kube_System' }, /not a DNS label/);
  refuse({ chain: ['flannel'] }, /cannot chain "flannel"/);
  refuse({ agentMemoryMi: 64 }, /at least 128/);
  refuse({ clusterSubnet: '10.244.0.0/33' }, /not an IPv4 CIDR/);
  refuse({ blockSize: 8 }, /does not fit/);
  assert.throws(() => manifestOptions(['--etcd-ca', 'x']), /all of --etcd-ca, --etcd-cert and --etcd-key/);
  assert.throws(() => manifestOptions(['--bogus']), /Unknown option '--bogus'/);
  assert.equal(MANIFEST_DEFAULTS.namespace, 'kube-system');
});

// --- every mode ----------------------------------------------------------------------------

/** Per mode: the cluster subnet and a networkConfig an operator would give (the mode's own keys),
 *  and one that the plugin refuses, with the field it names. A mode added to the registry fails
 *  here until it has a row. */
const MODE_SAMPLES: Record<string, { clusterSubnet: string; networkConfig: Record<string, unknown>; bad: [Record<string, unknown>, RegExp] }> = {
  'host-gw': { clusterSubnet: '10.244.0.0/16', networkConfig: { bridge: 'cni0', mtu: 1450 }, bad: [{ bridge: 'a-name-longer-than-15' }, /bridge/] },
  vxlan: { clusterSubnet: '10.244.0.0/16', networkConfig: { vxlan: { vni: 4096, port: 4789 }, mtu: 1400 }, bad: [{ vxlan: { port: 70000 } }, /vxlan\.port/] },
  macvlan: {
    clusterSubnet: '192.168.1.0/24',
    networkConfig: { macvlan: { master: 'eth0', mode: 'bridge' }, ipam: { rangeStart: '192.168.1.200', rangeEnd: '192.168.1.250', gateway: '192.168.1.1' } },
    bad: [{ macvlan: { mode: 'bridged' } }, /macvlan\.mode/],
  },
  ipip: {
    clusterSubnet: '10.244.0.0/16',
    networkConfig: { bgp: { ipipMode: 'crossSubnet', asn: 64600, externalPeers: [{ address: '10.0.0.1', asn: 65000 }] } },
    bad: [{ bgp: { ipipMode: 'sometimes' } }, /bgp\.ipipMode/],
  },
  ipvlan: {
    clusterSubnet: '192.168.1.0/24',
    networkConfig: { ipvlan: { master: 'eth0', mode: 'l3' }, ipam: { rangeStart: '192.168.1.200', rangeEnd: '192.168.1.250' } },
    bad: [{ ipvlan: { mode: 'l4' } }, /ipvlan\.mode/],
  },
};

test('every mode of the registry has a manifest sample', () => {
  assert.deepEqual(Object.keys(MODE_SAMPLES).sort(), MODES.names().sort());
});

for (const mode of MODES.names()) {
  test(`manifests for ${mode}: every object validates; agent.yaml's networkConfig is what the conflist carries; the agent gets what the mode's node state needs`, () => {
    const sample = MODE_SAMPLES[mode];
    assert.ok(sample, `MODE_SAMPLES needs a row for ${mode}`);
    const text = renderManifests(options({ mode, clusterSubnet: sample.clusterSubnet, networkConfig: sample.networkConfig }));
    const objs = parseAndValidate(text);
    assert.deepEqual(objs.map((o) => o.kind), ['ServiceAccount', 'ConfigMap', 'DaemonSet']);
    const ds = byKind(objs, 'DaemonSet');
    assert.equal(ds.metadata.annotations['testcni.dev/mode'], mode);
    const cm = byKind(objs, 'ConfigMap');
    const dir = mkdtempSync(join(tmpdir(), 'tcman-'));
    let network: ReturnType<typeof loadAgentConfig>['networkConfig'] | null = null;
    try {
      writeFileSync(join(dir, 'agent.yaml'), cm.data['agent.yaml']);
      // the agent's own parser, as the DaemonSet runs it: it validates networkConfig like the plugin
      const cfg = loadAgentConfig(['--config', join(dir, 'agent.yaml'), '--node-name', 'n1', '--underlay-ip', '192.168.1.10'], 'host');
      assert.equal(cfg.mode, mode);
      assert.equal(cfg.networkConfig.mode, mode);
      network = cfg.networkConfig;
      assert.equal(cfg.procSys, MODES.require(mode).deploy?.netSysctls ? '/host/proc/sys' : '/proc/sys', 'the node\'s sysctls through the mount only where the node plan sets them');
      const entry = JSON.parse(cm.data['10-testcni.conflist']).plugins[0];
      assert.deepEqual(entry, cfg.pluginEntry, 'the conflist carries the entry the agent composes');
      for (const [k, v] of Object.entries(sample.networkConfig)) {
        if (k !== 'ipam') assert.deepEqual(entry[k], v, `the conflist carries networkConfig.${k}`);
      }
      checkConflist(cm.data['10-testcni.conflist'], 'ConfigMap');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const pod = ds.spec.template.spec;
    const [agent] = pod.containers;
    const deploy = MODES.require(mode).deploy;
    const caps = (deploy?.capabilities ?? []).map((c) => c.name);
    assert.deepEqual(agent.securityContext.capabilities, caps.length ? { drop: ['ALL'], add: caps } : { drop: ['ALL'] }, `${mode}: exactly the capabilities its ModeDeploy asks for`);
    for (const c of deploy?.capabilities ?? []) assert.ok(text.includes(`- ${c.name} # ${c.why}`), `the manifest says why ${c.name}`);
    const hostPaths = pod.volumes.filter((v: Obj) => v.hostPath).map((v: Obj) => v.hostPath.path);
    const needed = deploy?.hostPaths?.(network!) ?? [];
    for (const p of needed) {
      assert.ok(hostPaths.includes(p.path), `${p.path} is a host volume`);
      assert.ok(agent.volumeMounts.some((m: Obj) => m.mountPath === p.path && m.mountPropagation === (p.propagation ?? 'None')), `${p.path} is mounted into the agent`);
    }
    assert.ok(!hostPaths.includes('/sys/fs/bpf') || needed.some((p) => p.path === '/sys/fs/bpf'), 'bpffs only for a mode that asks for it');
  });

  test(`manifests for ${mode}: a networkConfig the plugin would refuse is refused, naming the field`, () => {
    const sample = MODE_SAMPLES[mode]!;
    const [bad, field] = sample.bad;
    assert.throws(() => renderManifests(options({ mode, clusterSubnet: sample.clusterSubnet, networkConfig: { ...sample.networkConfig, ...bad } })),
      (e: Error) => e instanceof ManifestError && /^networkConfig: /.test(e.message) && field.test(e.message));
    assert.throws(() => renderManifests(options({ mode, clusterSubnet: sample.clusterSubnet, networkConfig: { ...sample.networkConfig, mode: 'other' } })),
      (e: Error) => e instanceof ManifestError && /networkConfig\.mode: set by the agent/.test(e.message));
  });
}

test('a plugin that cannot work after a mode is refused in --chain, with why', () => {
  for (const mode of ['macvlan', 'ipvlan']) {
    const s = MODE_SAMPLES[mode]!;
    for (const c of ['bandwidth', 'portmap']) {
      assert.throws(() => renderManifests(options({ mode, clusterSubnet: s.clusterSubnet, networkConfig: s.networkConfig, chain: [c] })),
        (e: Error) => e instanceof ManifestError && e.message.startsWith(`cannot chain ${c} after mode ${mode}: `));
    }
  }
  assert.doesNotThrow(() => renderManifests(options({ chain: ['portmap', 'bandwidth'] })), 'host-gw takes both');
});

test('--mode and --network-config reach the options; an unknown mode is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tcman-'));
  try {
    writeFileSync(join(dir, 'lan.yaml'), 'macvlan:\n  master: eth0\nipam:\n  rangeStart: 192.168.1.200\n  rangeEnd: 192.168.1.250\n');
    const o = manifestOptions(['--etcd-endpoints', 'http://10.0.0.10:2379', '--mode', 'macvlan', '--cluster-subnet', '192.168.1.0/24', '--network-config', join(dir, 'lan.yaml')]) as ManifestOptions;
    assert.equal(o.mode, 'macvlan');
    assert.deepEqual(o.networkConfig, { macvlan: { master: 'eth0' }, ipam: { rangeStart: '192.168.1.200', rangeEnd: '192.168.1.250' } });
    parseAndValidate(renderManifests(o));
    writeFileSync(join(dir, 'list.yaml'), '- a\n');
    assert.throws(() => manifestOptions(['--etcd-endpoints', 'http://10.0.0.10:2379', '--network-config', join(dir, 'list.yaml')]), /must be a mapping/);
    assert.throws(() => manifestOptions(['--etcd-endpoints', 'http://10.0.0.10:2379', '--network-config', join(dir, 'missing.yaml')]), /cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => renderManifests(options({ mode: 'vxlan2' })), (e: Error) => e instanceof ManifestError && /mode "vxlan2" is not one of/.test(e.message));
});

test('ipip with BGP passwords: the files must be in the node-secrets dir; the operator\'s Secret is mounted there, each key named', () => {
  const bgp = { ipipMode: 'never', meshPasswordFile: `${NODE_SECRETS_DIR}/mesh`, externalPeers: [{ address: '10.0.0.1', asn: 65000, passwordFile: `${NODE_SECRETS_DIR}/tor` }] };
  const objs = parseAndValidate(renderManifests(options({ mode: 'ipip', networkConfig: { bgp } })));
  const pod = byKind(objs, 'DaemonSet').spec.template.spec;
  const vol = pod.volumes.find((v: Obj) => v.name === 'node-secrets');
  assert.deepEqual(vol.secret, { secretName: 'testcni-node-secrets', defaultMode: 256, items: [{ key: 'mesh', path: 'mesh' }, { key: 'tor', path: 'tor' }] });
  const m = pod.containers[0].volumeMounts.find((x: Obj) => x.name === 'node-secrets');
  assert.deepEqual([m.mountPath, m.readOnly], [NODE_SECRETS_DIR, true]);
  assert.ok(!pod.initContainers[0].volumeMounts.some((x: Obj) => x.name === 'node-secrets'), 'not for the install sidecar');
  assert.ok(!byKind(objs, 'ConfigMap').data['agent.yaml'].includes('password:'), 'no password in the ConfigMap, only file names');
  assert.equal(parseAndValidate(renderManifests(options({ mode: 'ipip', networkConfig: { bgp: { ipipMode: 'never' } } }))).find((o) => o.kind === 'DaemonSet')!
    .spec.template.spec.volumes.some((v: Obj) => v.name === 'node-secrets'), false, 'no passwords, no Secret');
  assert.throws(() => renderManifests(options({ mode: 'ipip', networkConfig: { bgp: { meshPasswordFile: '/root/mesh' } } })),
    (e: Error) => e instanceof ManifestError && /meshPasswordFile|mesh.*must be a file in \/etc\/testcni\/secrets/.test(e.message));
});

test('vxlan: the DaemonSet mounts bpffs where the network config says it is', () => {
  const pod = byKind(parseAndValidate(renderManifests(options({ mode: 'vxlan', networkConfig: { vxlan: { bpffs: '/run/bpffs' } } }))), 'DaemonSet').spec.template.spec;
  const bpf = pod.volumes.find((v: Obj) => v.name === 'bpf');
  assert.equal(bpf.hostPath.path, '/run/bpffs');
  assert.deepEqual(pod.containers[0].volumeMounts.filter((m: Obj) => m.name === 'bpf').map((m: Obj) => [m.mountPath, m.mountPropagation]), [['/run/bpffs', 'HostToContainer']]);
});
