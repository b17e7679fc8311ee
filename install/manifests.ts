// `testcni manifests`: the DaemonSet, ServiceAccount, ConfigMap and (with TLS) Secret that run
// testcni on a cluster. All decisions are made here, in a view model of plain values; the
// templates (templates/*.hbs) only substitute them (and repeat lists). Every scalar reaches a
// template already written as a one-line YAML scalar (by the yaml package), so no value can
// break the YAML.
import { createHash } from 'node:crypto';
import HandlebarsRuntime from 'handlebars/runtime.js';
import { parseAllDocuments, stringify as toYaml } from 'yaml';
import { serviceaccountYamlTemplate } from '../templates/generated/serviceaccount.yaml.js';
import { configmapYamlTemplate } from '../templates/generated/configmap.yaml.js';
import { secretYamlTemplate } from '../templates/generated/secret.yaml.js';
import { daemonsetYamlTemplate } from '../templates/generated/daemonset.yaml.js';
import { conflistFor, conflistText, checkConflist, CONFLIST_NAME, CHAINABLE } from './conflist.ts';
import { parseCidr } from '../lib/ipv4.ts';
import { pluginEntryOf, validatedNetwork, AgentConfigError } from '../agent/config.ts';
import { MODES } from '../planner/registry.ts';

export const TESTCNI_VERSION = '0.1.0';

export interface ManifestOptions {
  namespace: string;
  name: string;
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  etcdEndpoints: string[];
  etcdPrefix: string;
  /** PEM contents; all three or none */
  etcdTls: { ca: string; cert: string; key: string } | null;
  network: string;
  mode: string;
  /** the agent's `networkConfig`: the mode's own keys (and mtu, ipMasq, uplink, ipam range) */
  networkConfig: Record<string, unknown>;
  /** the pod CIDR; for a mode on the node network (ipvlan, macvlan) the node network */
  clusterSubnet: string;
  blockSize: number;
  metricsPort: number;
  /** the agent container's memory limit (and request), MiB */
  agentMemoryMi: number;
  chain: string[];
  cniVersion: string | null;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
}

export const MANIFEST_DEFAULTS = {
  namespace: 'kube-system',
  name: 'testcni',
  image: `testcni:${TESTCNI_VERSION}`,
  imagePullPolicy: 'IfNotPresent',
  etcdPrefix: '/testcni',
  network: 'testcni',
  mode: MODES.defaultMode,
  clusterSubnet: '10.244.0.0/16',
  blockSize: 24,
  metricsPort: 9603,
  agentMemoryMi: 256,
  logLevel: 'info',
} as const;

/** Host paths, mounted at the same path in the containers so the conflist's paths hold on the node. */
const HOST = {
  cniBin: '/opt/cni/bin',
  cniConf: '/etc/cni/net.d',
  state: '/var/lib/testcni',
  cniState: '/var/lib/cni',
  run: '/run/testcni',
  procSysNet: '/proc/sys/net',
};
/** where the agent reaches the node's /proc/sys/net (runc refuses mounts inside /proc) */
const PROC_SYS = '/host/proc/sys';
const EXE = '/usr/local/bin/testcni';
const CONFIG_DIR = '/etc/testcni';
const TLS_DIR = '/etc/testcni/etcd';
/** where the agent finds the files its mode's node plan names as secrets (BGP passwords): a
 *  Secret the operator creates, `<name>-node-secrets`, with one key per file name */
export const NODE_SECRETS_DIR = '/etc/testcni/secrets';
/** install writes through these: the node's dirs, not the container's */
const INSTALL_BIN = '/host/opt/cni/bin';
const INSTALL_CONF = '/host/etc/cni/net.d';
const SOCKET = `${HOST.run}/agent.sock`;
/** The share of the memory limit given to V8's old generation; the rest is code, buffers, gRPC. */
const HEAP_SHARE = 0.6;
const INSTALL_MEMORY_MI = 128;
const INSTALL_HEAP_MB = 48;

export class ManifestError extends Error {}

/** A scalar as one line of YAML: plain where that reads the same, quoted where it would not
 *  (yaml decides), JSON-quoted when it spans lines. */
const q = (v: string | number | boolean): string =>
  typeof v === 'string' && /[\r\n]/.test(v) ? JSON.stringify(v) : toYaml(v, { lineWidth: 0 }).trimEnd();
const kv = (o: Record<string, string>) => Object.entries(o).map(([key, value]) => ({ key: q(key), value: q(value) }));

function check(o: ManifestOptions): void {
  const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  if (!label.test(o.namespace) || o.namespace.length > 63) throw new ManifestError(`namespace ${JSON.stringify(o.namespace)} is not a DNS label`);
  if (!label.test(o.name) || o.name.length > 40) throw new ManifestError(`name ${JSON.stringify(o.name)} is not a DNS label of at most 40 characters`);
  if (!o.image.trim() || /\s/.test(o.image)) throw new ManifestError(`image ${JSON.stringify(o.image)} is not an image reference`);
  if (o.etcdEndpoints.length === 0) throw new ManifestError('no etcd endpoints: give --etcd-endpoints URL[,URL…]');
  for (const e of o.etcdEndpoints) {
    if (!/^https?:\/\/[^\s/]+(:\d+)?\/?$/.test(e)) throw new ManifestError(`etcd endpoint ${JSON.stringify(e)} is not http(s)://host:port`);
  }
  const https = o.etcdEndpoints.some((e) => e.startsWith('https:'));
  if (https && !o.etcdTls) throw new ManifestError('https etcd endpoints need --etcd-ca, --etcd-cert and --etcd-key');
  for (const c of o.chain) if (!CHAINABLE[c]) throw new ManifestError(`cannot chain ${JSON.stringify(c)}: one of ${Object.keys(CHAINABLE).join(', ')}`);
  for (const c of o.chain) {
    const why = MODES.get(o.mode)?.deploy?.unchainable?.[c];
    if (why) throw new ManifestError(`cannot chain ${c} after mode ${o.mode}: ${why}`);
  }
  if (!Number.isInteger(o.agentMemoryMi) || o.agentMemoryMi < 128) throw new ManifestError(`agent memory ${o.agentMemoryMi} MiB: at least 128 (the agent settles at ~75 MB, ~140 MB under churn)`);
  if (!Number.isInteger(o.metricsPort) || o.metricsPort < 1 || o.metricsPort > 65535) throw new ManifestError(`metrics port ${o.metricsPort} is not a port`);
  const mode = MODES.get(o.mode);
  if (!mode) throw new ManifestError(`mode ${JSON.stringify(o.mode)} is not one of ${MODES.names().join(', ')}`);
  const subnet = parseCidr(o.clusterSubnet);
  if (!subnet) throw new ManifestError(`cluster subnet ${JSON.stringify(o.clusterSubnet)} is not an IPv4 CIDR`);
  // a mode on the node network shares one range among the nodes: it has no blocks to size
  if (mode.addressing.pool === 'block' && (!Number.isInteger(o.blockSize) || o.blockSize < subnet.prefix || o.blockSize > 30)) {
    throw new ManifestError(`block size /${o.blockSize} does not fit in ${o.clusterSubnet}`);
  }
  // networkConfig as the agent will read it from agent.yaml, and the conflist as the plugin will
  // read it on every node: refuse now what they would refuse there.
  try {
    validatedNetwork(o.network, pluginEntry(o));
  } catch (e) {
    if (e instanceof AgentConfigError) throw new ManifestError(`networkConfig: ${e.message}`);
    throw e;
  }
  try {
    checkConflist(conflistForCluster(o), 'the conflist');
  } catch (e) {
    throw new ManifestError(`${(e as Error).message}${(e as { details?: string }).details ? `: ${(e as { details?: string }).details}` : ''}`);
  }
}

/** The testcni entry the agent composes from agent.yaml (agent/config.ts), for the ConfigMap's
 *  conflist: the same function, so the two cannot differ. */
function pluginEntry(o: ManifestOptions): Record<string, unknown> {
  try {
    return pluginEntryOf({ mode: o.mode, clusterSubnet: o.clusterSubnet, stateDir: HOST.state, socket: SOCKET }, o.networkConfig);
  } catch (e) {
    if (e instanceof AgentConfigError) throw new ManifestError(e.message);
    throw e;
  }
}

/** The files the mode's node plan reads as secrets (e.g. BGP passwords), by config field: each
 *  must be in NODE_SECRETS_DIR, where the DaemonSet mounts the operator's Secret. */
function nodeSecretFiles(o: ManifestOptions): Record<string, string> {
  const mode = MODES.require(o.mode);
  const files = mode.node?.secretFiles?.(validatedNetwork(o.network, pluginEntry(o))) ?? {};
  for (const [field, path] of Object.entries(files)) {
    if (!path.startsWith(`${NODE_SECRETS_DIR}/`) || path.slice(NODE_SECRETS_DIR.length + 1).includes('/')) {
      throw new ManifestError(`networkConfig: ${field} is ${JSON.stringify(path)}: in a cluster it must be a file in ${NODE_SECRETS_DIR} (the Secret ${o.name}-node-secrets, which you create, is mounted there)`);
    }
  }
  return files;
}

/** What the agent's container needs for the mode's node state (planner/mode.ts ModeDeploy), for
 *  the network as configured. */
export function agentNeeds(o: ManifestOptions) {
  const d = MODES.require(o.mode).deploy;
  return {
    capabilities: d?.capabilities ?? [],
    hostPaths: d?.hostPaths?.(validatedNetwork(o.network, pluginEntry(o))) ?? [],
    programs: d?.programs ?? [],
    unchainable: d?.unchainable ?? {},
    netSysctls: d?.netSysctls ?? '',
  };
}

/** The agent's config file, as the ConfigMap carries it. */
export function agentConfigFor(o: ManifestOptions): Record<string, unknown> {
  return {
    network: o.network,
    mode: o.mode,
    clusterSubnet: o.clusterSubnet,
    blockSize: o.blockSize,
    etcd: {
      endpoints: o.etcdEndpoints,
      prefix: o.etcdPrefix,
      ...(o.etcdTls ? { caFile: `${TLS_DIR}/ca.crt`, certFile: `${TLS_DIR}/tls.crt`, keyFile: `${TLS_DIR}/tls.key` } : {}),
    },
    socket: SOCKET,
    stateDir: HOST.state,
    // On the node's loopback (hostNetwork): the kubelet probes it there; Prometheus needs a
    // scrape path of its own (e.g. a node-local proxy) or a wider address here.
    metricsAddress: `127.0.0.1:${o.metricsPort}`,
    logLevel: o.logLevel,
    ...(agentNeeds(o).netSysctls ? { procSys: PROC_SYS } : {}),
    ...(Object.keys(o.networkConfig).length > 0 ? { networkConfig: o.networkConfig } : {}),
  };
}

export function conflistForCluster(o: ManifestOptions): string {
  return conflistText(conflistFor({ network: o.network, entry: pluginEntry(o), chain: o.chain, ...(o.cniVersion ? { cniVersion: o.cniVersion } : {}) }));
}

const indent = (text: string, n: number) => text.replace(/\n$/, '').split('\n').map((l) => (l ? ' '.repeat(n) + l : '')).join('\n');

type Mount = { name: string; mountPath: string; readOnly: boolean; propagation: string };
const mount = (name: string, mountPath: string, readOnly = false, propagation = 'None'): Mount => ({ name, mountPath, readOnly, propagation });
const quoteMounts = (ms: Mount[]) => ms.map((m) => ({ name: q(m.name), mountPath: q(m.mountPath), readOnly: q(m.readOnly), propagation: q(m.propagation) }));

/** Everything the templates print, computed and quoted. */
export function manifestView(o: ManifestOptions) {
  check(o);
  const labels = { 'app.kubernetes.io/name': o.name, 'app.kubernetes.io/component': 'node-agent', 'app.kubernetes.io/version': TESTCNI_VERSION };
  const selector = { 'app.kubernetes.io/name': o.name, 'app.kubernetes.io/component': 'node-agent' };
  const configFiles: Record<string, string> = { 'agent.yaml': toYaml(agentConfigFor(o)), [CONFLIST_NAME]: conflistForCluster(o) };
  const secretFiles = o.etcdTls ? { 'ca.crt': o.etcdTls.ca, 'tls.crt': o.etcdTls.cert, 'tls.key': o.etcdTls.key } : null;
  // A change of config or certificates changes the pod template, so the DaemonSet rolls.
  const configHash = createHash('sha256').update(JSON.stringify([configFiles, secretFiles])).digest('hex');
  const secretName = `${o.name}-etcd-tls`;
  const heapMb = Math.floor(o.agentMemoryMi * HEAP_SHARE);

  const needs = agentNeeds(o);
  const nodeSecrets = Object.values(nodeSecretFiles(o)).map((p) => p.slice(NODE_SECRETS_DIR.length + 1)).sort();
  const agentMounts = [
    mount('config', CONFIG_DIR, true),
    mount('state', HOST.state),
    mount('cni-state', HOST.cniState),
    mount('run', HOST.run),
    ...needs.hostPaths.map((p) => mount(p.name, p.path, false, p.propagation ?? 'None')),
    ...(needs.netSysctls ? [mount('proc-sys-net', `${PROC_SYS}/net`)] : []),
    ...(secretFiles ? [mount('etcd-tls', TLS_DIR, true)] : []),
    ...(nodeSecrets.length > 0 ? [mount('node-secrets', NODE_SECRETS_DIR, true)] : []),
  ];
  const installMounts = [
    mount('cni-bin', INSTALL_BIN),
    mount('cni-conf', INSTALL_CONF),
    mount('config', CONFIG_DIR, true),
    mount('state', HOST.state),
    mount('run', HOST.run), // connects to the agent socket
  ];
  return {
    name: q(o.name),
    namespace: q(o.namespace),
    serviceAccount: q(o.name),
    configMap: q(`${o.name}-config`),
    secret: q(secretName),
    labels: kv(labels),
    selector: kv(selector),
    configHash: q(configHash),
    image: q(o.image),
    imagePullPolicy: q(o.imagePullPolicy),
    install: {
      command: [EXE, 'install', '--bin-dir', INSTALL_BIN, '--conf-dir', INSTALL_CONF, '--conflist', `${CONFIG_DIR}/${CONFLIST_NAME}`,
        '--state-dir', HOST.state, '--timeout', '600', '--keep-running'].map(q),
      env: [{ name: q('NODE_OPTIONS'), value: q(`--max-old-space-size=${INSTALL_HEAP_MB}`) }],
      cpuRequest: q('10m'),
      memory: q(`${INSTALL_MEMORY_MI}Mi`),
      mounts: quoteMounts(installMounts),
    },
    agent: {
      command: [EXE, 'agent', '--config', `${CONFIG_DIR}/agent.yaml`, '--node-name', '$(NODE_NAME)'].map(q),
      env: [{ name: q('NODE_OPTIONS'), value: q(`--max-old-space-size=${heapMb}`) }],
      fieldEnv: [{ name: q('NODE_NAME'), fieldPath: q('spec.nodeName') }],
      metricsPort: q(o.metricsPort),
      probeHost: q('127.0.0.1'),
      cpuRequest: q('50m'),
      memory: q(`${o.agentMemoryMi}Mi`),
      // only what the mode's node state needs (its ModeDeploy), each with its reason
      capabilities: needs.capabilities.map((c) => ({ name: q(c.name), why: c.why.replace(/\s+/g, ' ') })),
      mounts: quoteMounts(agentMounts),
    },
    hostVolumes: [
      ['cni-bin', HOST.cniBin], ['cni-conf', HOST.cniConf], ['state', HOST.state], ['cni-state', HOST.cniState], ['run', HOST.run],
      ...needs.hostPaths.map((p) => [p.name, p.path]),
      ...(needs.netSysctls ? [['proc-sys-net', HOST.procSysNet]] : []),
    ].map(([name, path]) => ({ name: q(name!), path: q(path!) })),
    mode: q(o.mode),
    secretVolumes: [
      ...(secretFiles ? [{ name: q('etcd-tls'), secretName: q(secretName), items: [] }] : []),
      // the operator's Secret: the pod waits until it exists and holds every key named here
      ...(nodeSecrets.length > 0 ? [{ name: q('node-secrets'), secretName: q(`${o.name}-node-secrets`), items: nodeSecrets.map(q) }] : []),
    ],
    configData: Object.entries(configFiles).map(([key, text]) => ({ key: q(key), indented: indent(text, 4) })),
    secretData: secretFiles ? Object.entries(secretFiles).map(([key, pem]) => ({ key: q(key), value: q(Buffer.from(pem).toString('base64')) })) : [],
  };
}

type Render = (view: ReturnType<typeof manifestView>) => string;
const runtime = HandlebarsRuntime as unknown as { template(spec: object): Render };

/** In output order; the Secret only with etcd TLS. Precompiled by scripts/gen-templates.mjs. */
const TEMPLATES: [string, object][] = [
  ['serviceaccount.yaml', serviceaccountYamlTemplate],
  ['configmap.yaml', configmapYamlTemplate],
  ['secret.yaml', secretYamlTemplate],
  ['daemonset.yaml', daemonsetYamlTemplate],
];

/** The manifests as one multi-document YAML stream, checked to parse. */
export function renderManifests(o: ManifestOptions): string {
  const view = manifestView(o);
  const docs = TEMPLATES.filter(([t]) => t !== 'secret.yaml' || view.secretData.length > 0).map(([t, spec]) => {
    const text = runtime.template(spec)(view);
    const parsed = parseAllDocuments(text);
    const problems = (Array.isArray(parsed) ? parsed : [parsed]).flatMap((d) => [...d.errors, ...d.warnings]);
    if (problems.length > 0) throw new Error(`templates/${t}.hbs rendered invalid YAML: ${problems[0]!.message}`);
    return text;
  });
  return `# testcni ${TESTCNI_VERSION}: rendered by \`testcni manifests\`\n` + docs.map((d) => `---\n${d}`).join('');
}
