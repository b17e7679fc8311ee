// The node agent's configuration: a YAML (or JSON) file, then command-line flags on top.
// Every node-scoped path is configurable so several agents can share one machine.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { parseCidr, formatCidr } from '../lib/ipv4.ts';
import { defaultRouteDevice } from '../executor/facts.ts';
import type { EtcdSettings } from './datastore/etcd-store.ts';
import type { NetworkConfig } from '../model/config.ts';
import { LATEST } from '../model/cni-version.ts';
import { CniError } from '../model/errors.ts';
import { MODES } from '../planner/registry.ts';
import { loadNetworkConfig } from '../schemas/network-config.ts';

export interface AgentConfig {
  nodeName: string;
  /** underlay interface and address; found from the default route when not given */
  underlayInterface: string | null;
  underlayIp: string;
  etcd: EtcdSettings;
  network: string;
  clusterSubnet: string;
  blockSize: number;
  mode: string;
  stateDir: string;
  socket: string;
  /** host:port for /metrics and /healthz over TCP; null: off */
  metricsAddress: string | null;
  leaseTtlSeconds: number;
  resyncSeconds: number;
  /** how long routes to a node outlive its registration (0: remove at once) */
  routeGraceSeconds: number;
  routeProtocol: number;
  /** where to write the CNI config once ready (null: do not write one) */
  cniConfDir: string | null;
  cniConfName: string;
  /** the testcni entry of the CNI config this node's pods use (cluster IPAM through this agent) */
  pluginEntry: Record<string, unknown>;
  /** that entry, validated: what the mode's node plan reads */
  networkConfig: NetworkConfig;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
}

export const AGENT_DEFAULTS = {
  network: 'testcni',
  clusterSubnet: '10.244.0.0/16',
  blockSize: 24,
  mode: 'host-gw' as string,
  stateDir: '/var/lib/testcni',
  socket: '/run/testcni/agent.sock',
  metricsAddress: '127.0.0.1:9603',
  leaseTtlSeconds: 10,
  resyncSeconds: 30,
  routeProtocol: 151,
  cniConfName: '10-testcni.conflist',
  etcdPrefix: '/testcni',
};

export const AGENT_HELP = `usage: testcni agent [--config FILE] [options]

The node agent: registers the node in etcd, claims its pod block, serves IPAM to the plugin
over a unix socket, and keeps this node's routes to the other nodes' blocks converged.
Options override the config file (YAML or JSON, same names in camelCase).

  --config FILE            agent config file
  --node-name NAME         this node's name (default: the host name)
  --underlay-interface IF  underlay interface (default: the default route's)
  --underlay-ip ADDR       underlay address (default: IF's first IPv4 address)
  --etcd-endpoints URLS    comma-separated, e.g. http://198.18.0.1:2379
  --etcd-ca FILE --etcd-cert FILE --etcd-key FILE   TLS for etcd
  --etcd-prefix PREFIX     key prefix (default ${AGENT_DEFAULTS.etcdPrefix})
  --cluster-subnet CIDR    pod CIDR of the cluster (default ${AGENT_DEFAULTS.clusterSubnet}); for a mode
                           on the node network (ipvlan, macvlan) the node network, whose range
                           (networkConfig.ipam.rangeStart/rangeEnd) every node shares
  --block-size N           prefix length of a node block (default ${AGENT_DEFAULTS.blockSize})
  --mode MODE              ${MODES.names().join(', ')} (default ${MODES.defaultMode})
  --network NAME           CNI network name (default ${AGENT_DEFAULTS.network})
  --state-dir DIR          (default ${AGENT_DEFAULTS.stateDir})
  --socket PATH            agent API socket (default ${AGENT_DEFAULTS.socket})
  --metrics-address H:P    /metrics and /healthz (default ${AGENT_DEFAULTS.metricsAddress}; "off" to disable)
  --cni-conf-dir DIR       write the CNI conflist there once ready
  --lease-ttl SECONDS      node registration TTL (default ${AGENT_DEFAULTS.leaseTtlSeconds})
  --resync SECONDS         full reconcile period (default ${AGENT_DEFAULTS.resyncSeconds})
  --route-grace SECONDS    keep routes to a node this long after its registration lapses
                           (default: the lease TTL; 0 removes them at once)
  --route-protocol N       kernel route protocol number of our routes (default ${AGENT_DEFAULTS.routeProtocol})
  --log-level LEVEL        debug, info, warn, error
`;

function firstIpv4(dev: string): string | null {
  return networkInterfaces()[dev]?.find((a) => a.family === 'IPv4' && !a.internal)?.address ?? null;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export class AgentConfigError extends Error {}

type BaseConfig = Omit<AgentConfig, 'pluginEntry' | 'networkConfig'>;

/** The testcni entry of the CNI config: the mode's own keys (and mtu, ipMasq, …) from the
 *  file's `networkConfig`, then what the agent itself decides (mode, subnet, cluster IPAM). */
function pluginEntryOf(cfg: BaseConfig, extra: unknown): Record<string, unknown> {
  if (extra !== undefined && (extra === null || typeof extra !== 'object' || Array.isArray(extra))) {
    throw new AgentConfigError('networkConfig must be a mapping of network config keys (the mode\'s section, mtu, ipMasq, ...)');
  }
  const own = (extra ?? {}) as Record<string, unknown>;
  for (const k of ['type', 'name', 'cniVersion', 'mode', 'subnet', 'stateDir']) {
    if (k in own) throw new AgentConfigError(`networkConfig.${k}: set by the agent (use the agent's own option)`);
  }
  const ipam = { ...((own.ipam ?? {}) as Record<string, unknown>), type: 'cluster', agentSocket: cfg.socket };
  return { type: 'testcni', mode: cfg.mode, subnet: cfg.clusterSubnet, stateDir: cfg.stateDir, ...own, ipam };
}

function validatedNetwork(name: string, entry: Record<string, unknown>): NetworkConfig {
  try {
    return loadNetworkConfig({ cniVersion: LATEST, name, ...entry }, LATEST, MODES);
  } catch (e) {
    if (e instanceof CniError) throw new AgentConfigError(`network config: ${e.message}${e.details ? ` (${e.details})` : ''}`);
    throw e;
  }
}

/** The route grace: a whole number of seconds, 0 allowed; by default one lease TTL. */
function routeGrace(v: unknown, leaseTtl: number): number {
  if (v === undefined) return leaseTtl;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new AgentConfigError(`routeGraceSeconds must be a whole number of seconds, got ${JSON.stringify(v)}`);
  return n;
}

const FLAGS = ['config', 'node-name', 'underlay-interface', 'underlay-ip', 'etcd-endpoints', 'etcd-ca', 'etcd-cert', 'etcd-key', 'etcd-prefix',
  'cluster-subnet', 'block-size', 'mode', 'network', 'state-dir', 'socket', 'metrics-address', 'cni-conf-dir', 'lease-ttl',
  'resync', 'route-grace', 'route-protocol', 'log-level'] as const;

function parseFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: Object.fromEntries(FLAGS.map((k) => [k, { type: 'string' as const }])) }).values;
  } catch (e) {
    // A mistyped flag is the operator's error: say so (with the fix), not a stack trace.
    throw new AgentConfigError(`${(e as Error).message} (see testcni agent --help)`);
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  try {
    return (parseYaml(readFileSync(path, 'utf8')) as Record<string, unknown> | null) ?? {};
  } catch (e) {
    throw new AgentConfigError(`cannot read config file ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
}

export function loadAgentConfig(argv: string[], hostname: string): AgentConfig {
  const values = parseFlags(argv);
  const file = values.config ? readConfigFile(values.config) : {};
  const etcdFile = (file.etcd ?? {}) as Record<string, unknown>;
  const pick = (flag: string | undefined, key: string): string | undefined => flag ?? str(file[key]);
  const num = (flag: string | undefined, key: string, dflt: number): number => {
    const v = flag ?? file[key];
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new AgentConfigError(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
    return n;
  };

  const underlayInterface = pick(values['underlay-interface'], 'underlayInterface') ?? defaultRouteDevice();
  const underlayIp = pick(values['underlay-ip'], 'underlayIp') ?? (underlayInterface ? firstIpv4(underlayInterface) : null);
  if (!underlayIp) throw new AgentConfigError('no underlay address: give --underlay-ip, or --underlay-interface with an IPv4 address, or a default route');
  const endpointsRaw = values['etcd-endpoints'] ?? (Array.isArray(etcdFile.endpoints) ? (etcdFile.endpoints as string[]).join(',') : str(etcdFile.endpoints));
  const endpoints = (endpointsRaw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (endpoints.length === 0) throw new AgentConfigError('no etcd endpoints: give --etcd-endpoints or etcd.endpoints');
  const subnetText = pick(values['cluster-subnet'], 'clusterSubnet') ?? AGENT_DEFAULTS.clusterSubnet;
  const subnet = parseCidr(subnetText);
  if (!subnet) throw new AgentConfigError(`clusterSubnet ${JSON.stringify(subnetText)} is not an IPv4 CIDR`);
  const mode = pick(values.mode, 'mode') ?? MODES.defaultMode;
  if (!MODES.get(mode)) throw new AgentConfigError(`mode ${mode} is not one of ${MODES.names().join(', ')}`);
  const blockSize = num(values['block-size'], 'blockSize', AGENT_DEFAULTS.blockSize);
  // A mode on the node network shares one range among the nodes: it has no blocks to size.
  const blocks = MODES.get(mode)!.addressing.pool === 'block';
  if (blocks && (blockSize < subnet.prefix || blockSize > 30)) throw new AgentConfigError(`blockSize /${blockSize} does not fit in ${subnetText}`);
  const metrics = pick(values['metrics-address'], 'metricsAddress') ?? AGENT_DEFAULTS.metricsAddress;
  const level = pick(values['log-level'], 'logLevel') ?? 'info';
  const leaseTtlSeconds = num(values['lease-ttl'], 'leaseTtlSeconds', AGENT_DEFAULTS.leaseTtlSeconds);
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new AgentConfigError(`logLevel ${level} is not debug, info, warn or error`);

  const cfg = {
    nodeName: pick(values['node-name'], 'nodeName') ?? hostname,
    underlayInterface: underlayInterface ?? null,
    underlayIp,
    etcd: {
      endpoints,
      caFile: values['etcd-ca'] ?? str(etcdFile.caFile) ?? null,
      certFile: values['etcd-cert'] ?? str(etcdFile.certFile) ?? null,
      keyFile: values['etcd-key'] ?? str(etcdFile.keyFile) ?? null,
      prefix: (values['etcd-prefix'] ?? str(etcdFile.prefix) ?? AGENT_DEFAULTS.etcdPrefix).replace(/\/+$/, ''),
      dialTimeoutMs: 2000,
      requestTimeoutMs: 2000,
    },
    network: pick(values.network, 'network') ?? AGENT_DEFAULTS.network,
    clusterSubnet: formatCidr(subnet),
    blockSize,
    mode,
    stateDir: pick(values['state-dir'], 'stateDir') ?? AGENT_DEFAULTS.stateDir,
    socket: pick(values.socket, 'socket') ?? AGENT_DEFAULTS.socket,
    metricsAddress: metrics === 'off' ? null : metrics,
    leaseTtlSeconds,
    resyncSeconds: num(values.resync, 'resyncSeconds', AGENT_DEFAULTS.resyncSeconds),
    routeGraceSeconds: routeGrace(values['route-grace'] ?? file.routeGraceSeconds, leaseTtlSeconds),
    routeProtocol: num(values['route-protocol'], 'routeProtocol', AGENT_DEFAULTS.routeProtocol),
    cniConfDir: pick(values['cni-conf-dir'], 'cniConfDir') ?? null,
    cniConfName: str(file.cniConfName) ?? AGENT_DEFAULTS.cniConfName,
    logLevel: level as AgentConfig['logLevel'],
  };
  const pluginEntry = pluginEntryOf(cfg, file.networkConfig);
  return { ...cfg, pluginEntry, networkConfig: validatedNetwork(cfg.network, pluginEntry) };
}
