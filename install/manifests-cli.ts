// `testcni manifests`: flags in, the rendered YAML stream out (handlebars is loaded only here).
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { renderManifests, ManifestError, MANIFEST_DEFAULTS, type ManifestOptions } from './manifests.ts';

const D = MANIFEST_DEFAULTS;

export const MANIFESTS_HELP = `usage: testcni manifests --etcd-endpoints URL[,URL…] [options] > testcni.yaml

Prints the Kubernetes objects that run testcni on every Linux node: a ServiceAccount, a ConfigMap
(the agent's config and the conflist), a Secret with the etcd client certificate (with TLS), and
a DaemonSet: the node agent, with \`testcni install\` as a sidecar init container that installs the
executable and, once the agent is ready, the conflist. Needs Kubernetes 1.29 or later.

  --etcd-endpoints URLS   etcd client URLs, comma-separated (required)
  --etcd-ca FILE --etcd-cert FILE --etcd-key FILE   PEM files for etcd TLS (all three)
  --etcd-prefix PREFIX    (default ${D.etcdPrefix})
  --namespace NS          (default ${D.namespace})
  --name NAME             object names and labels (default ${D.name})
  --image IMAGE           an image with the executable at /usr/local/bin/testcni and iproute2
                          (default ${D.image}; see deploy/Containerfile)
  --image-pull-policy P   Always, IfNotPresent or Never (default ${D.imagePullPolicy})
  --cluster-subnet CIDR   pod CIDR (default ${D.clusterSubnet})
  --block-size N          prefix length of each node's block (default ${D.blockSize})
  --network NAME          CNI network name (default ${D.network})
  --chain LIST            reference plugins after testcni: portmap, bandwidth (they must be in
                          /opt/cni/bin on every node); makes the conflist cniVersion 1.0.0
  --cni-version V         the conflist's cniVersion (default 1.1.0, 1.0.0 with --chain)
  --agent-memory MIB      the agent's memory limit (default ${D.agentMemoryMi}; V8's heap gets 60%)
  --metrics-port PORT     the agent's /metrics, /healthz, /livez on the node's 127.0.0.1 (default ${D.metricsPort})
  --log-level LEVEL       debug, info, warn, error (default ${D.logLevel})
`;

function int(v: string | undefined, dflt: number, flag: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new ManifestError(`${flag} must be a whole number, got ${JSON.stringify(v)}`);
  return n;
}

function pem(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new ManifestError(`cannot read ${path}: ${(e as Error).message}`);
  }
}

const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);

export function manifestOptions(args: string[]): ManifestOptions | 'help' {
  const names = ['etcd-endpoints', 'etcd-ca', 'etcd-cert', 'etcd-key', 'etcd-prefix', 'namespace', 'name', 'image', 'image-pull-policy',
    'cluster-subnet', 'block-size', 'network', 'chain', 'cni-version', 'agent-memory', 'metrics-port', 'log-level'] as const;
  let values: Partial<Record<(typeof names)[number], string>> & { help?: boolean };
  try {
    values = parseArgs({ args, options: { ...Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])), help: { type: 'boolean' } } }).values;
  } catch (e) {
    throw new ManifestError(`${(e as Error).message} (see testcni manifests --help)`);
  }
  if (values.help) return 'help';
  const tls = [values['etcd-ca'], values['etcd-cert'], values['etcd-key']];
  if (tls.some(Boolean) && !tls.every(Boolean)) throw new ManifestError('etcd TLS needs all of --etcd-ca, --etcd-cert and --etcd-key');
  const policy = values['image-pull-policy'] ?? D.imagePullPolicy;
  if (!['Always', 'IfNotPresent', 'Never'].includes(policy)) throw new ManifestError(`--image-pull-policy must be Always, IfNotPresent or Never`);
  const level = values['log-level'] ?? D.logLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new ManifestError('--log-level must be debug, info, warn or error');
  return {
    namespace: values.namespace ?? D.namespace,
    name: values.name ?? D.name,
    image: values.image ?? D.image,
    imagePullPolicy: policy as ManifestOptions['imagePullPolicy'],
    etcdEndpoints: list(values['etcd-endpoints']),
    etcdPrefix: values['etcd-prefix'] ?? D.etcdPrefix,
    etcdTls: tls.every(Boolean) ? { ca: pem(tls[0]!), cert: pem(tls[1]!), key: pem(tls[2]!) } : null,
    network: values.network ?? D.network,
    mode: D.mode,
    clusterSubnet: values['cluster-subnet'] ?? D.clusterSubnet,
    blockSize: int(values['block-size'], D.blockSize, '--block-size'),
    metricsPort: int(values['metrics-port'], D.metricsPort, '--metrics-port'),
    agentMemoryMi: int(values['agent-memory'], D.agentMemoryMi, '--agent-memory'),
    chain: list(values.chain),
    cniVersion: values['cni-version'] ?? null,
    logLevel: level as ManifestOptions['logLevel'],
  };
}

export async function cmdManifests(args: string[]): Promise<number> {
  try {
    const o = manifestOptions(args);
    if (o === 'help') return process.stdout.write(MANIFESTS_HELP), 0;
    process.stdout.write(renderManifests(o));
    return 0;
  } catch (e) {
    if (e instanceof ManifestError) {
      process.stderr.write(`testcni manifests: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
