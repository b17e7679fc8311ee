// Network config: parse stdin, negotiate the version, validate the shape, then check what a
// schema cannot (CIDR arithmetic) and fill in defaults. The result is what the planner reads.
import { CniError, Code } from './errors.ts';
import { requireSupported, type CniVersion } from './version.ts';
import { checkConfigShape } from '../schemas/validate.ts';
import { parseCidr, parseIp, formatCidr, formatIp, contains, containsCidr, nthBlock, lastIp, type Cidr } from '../lib/ipv4.ts';

export type Mode = 'host-gw' | 'vxlan' | 'ipip' | 'ipvlan' | 'macvlan';

export interface IpamConfig {
  type: 'file' | 'cluster';
  /** the pool addresses come from: this node's block (or the node network for ipvlan/macvlan) */
  block: string;
  rangeStart: string;
  rangeEnd: string;
  gateway: string;
  dataDir: string;
  agentSocket: string;
  blockSize: number;
}

export interface NetworkConfig {
  cniVersion: CniVersion;
  name: string;
  type: string;
  mode: Mode;
  subnet: string;
  mtu: number | null;
  ipMasq: boolean;
  uplink: string | null;
  bridge: string;
  stateDir: string;
  logFile: string | null;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  ipam: IpamConfig;
}

/** What came on stdin besides the network itself. */
export interface ConfigExtras {
  prevResult: Record<string, unknown> | null;
  validAttachments: { containerID: string; ifname: string }[] | null;
}

export const DEFAULTS = {
  bridge: 'testcni0',
  stateDir: '/var/lib/testcni',
  ipamDataDir: '/var/lib/cni/networks',
  agentSocket: '/run/testcni/agent.sock',
  blockSize: 24,
} as const;

/** The embedded default network: host-gw on a node bridge, node-local file IPAM. */
export const DEFAULT_NETWORK = {
  cniVersion: '1.1.0',
  name: 'testcni',
  type: 'testcni',
  subnet: '10.244.0.0/16',
} as const;

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CniError(Code.DecodeFailure, 'network config is not valid JSON', (e as Error).message);
  }
}

function bad(field: string, why: string): never {
  throw new CniError(Code.InvalidConfig, `invalid network config: ${field}`, `${field}: ${why}`);
}

function cidrField(field: string, text: string): Cidr {
  return parseCidr(text) ?? bad(field, `${JSON.stringify(text)} is not an IPv4 CIDR`);
}

function ipField(field: string, text: string): number {
  return parseIp(text) ?? bad(field, `${JSON.stringify(text)} is not an IPv4 address`);
}

/** The original vxlan mode accepted a bare network address and meant /16. */
function subnetOf(raw: Record<string, unknown>, mode: Mode): Cidr {
  const text = raw.subnet;
  if (typeof text !== 'string') bad('subnet', 'is required');
  if (mode === 'vxlan' && !text.includes('/')) return cidrField('subnet', `${text}/16`);
  return cidrField('subnet', text);
}

function ipamOf(raw: Record<string, unknown>, mode: Mode, subnet: Cidr): IpamConfig {
  const ipam = (raw.ipam ?? {}) as Record<string, unknown>;
  const explicitSize = ipam.blockSize as number | undefined;
  if (explicitSize !== undefined && explicitSize < subnet.prefix) {
    bad('ipam.blockSize', `/${explicitSize} is larger than the subnet /${subnet.prefix}`);
  }
  // Unset, the block is a /24 or, in a smaller subnet, the whole subnet: a /26 node network
  // (ipvlan/macvlan) must not fail over a field nobody wrote.
  const blockSize = explicitSize ?? Math.max(DEFAULTS.blockSize, subnet.prefix);
  let block: Cidr;
  if (typeof ipam.block === 'string') {
    block = cidrField('ipam.block', ipam.block);
    if (!containsCidr(subnet, block)) bad('ipam.block', `${formatCidr(block)} is outside subnet ${formatCidr(subnet)}`);
  } else if (mode === 'ipvlan' || mode === 'macvlan') {
    block = subnet; // the subnet is the node network itself
  } else {
    block = nthBlock(subnet, blockSize, 0)!;
  }
  if (block.prefix > 30) bad('ipam.block', `/${block.prefix} leaves no room for pods`);
  const gateway = typeof ipam.gateway === 'string' ? ipField('ipam.gateway', ipam.gateway) : block.base + 1;
  if (!contains(block, gateway)) bad('ipam.gateway', `${formatIp(gateway)} is outside ${formatCidr(block)}`);
  const first = typeof ipam.rangeStart === 'string' ? ipField('ipam.rangeStart', ipam.rangeStart) : block.base + 1;
  const last = typeof ipam.rangeEnd === 'string' ? ipField('ipam.rangeEnd', ipam.rangeEnd) : lastIp(block) - 1;
  for (const [field, ip] of [['ipam.rangeStart', first], ['ipam.rangeEnd', last]] as const) {
    if (!contains(block, ip)) bad(field, `${formatIp(ip)} is outside ${formatCidr(block)}`);
    if (ip === block.base || ip === lastIp(block)) bad(field, `${formatIp(ip)} is the network or broadcast address of ${formatCidr(block)}`);
  }
  if (first > last) bad('ipam.rangeStart', `${formatIp(first)} is after rangeEnd ${formatIp(last)}`);
  return {
    type: (ipam.type as 'file' | 'cluster' | undefined) ?? 'file',
    block: formatCidr(block),
    rangeStart: formatIp(first),
    rangeEnd: formatIp(last),
    gateway: formatIp(gateway),
    dataDir: (ipam.dataDir as string | undefined) ?? DEFAULTS.ipamDataDir,
    agentSocket: (ipam.agentSocket as string | undefined) ?? DEFAULTS.agentSocket,
    blockSize,
  };
}

/** Validates a decoded config object. Version first: an unknown version is code 1, not 7. */
export function loadConfig(raw: unknown): { config: NetworkConfig; extras: ConfigExtras } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CniError(Code.DecodeFailure, 'network config must be a JSON object');
  }
  const obj = raw as Record<string, unknown>;
  if (obj.cniVersion === undefined) bad('cniVersion', 'is required');
  const cniVersion = requireSupported(obj.cniVersion);
  checkConfigShape(obj);
  const mode = (obj.mode as Mode | undefined) ?? 'host-gw';
  // The schema counts characters; the kernel's limit is 15 bytes.
  for (const field of ['bridge', 'uplink', 'master']) {
    const v = obj[field];
    if (typeof v === 'string' && Buffer.byteLength(v) > 15) bad(field, `${JSON.stringify(v)} is longer than 15 bytes`);
  }
  const subnet = subnetOf(obj, mode);
  const config: NetworkConfig = {
    cniVersion,
    name: obj.name as string,
    type: obj.type as string,
    mode,
    subnet: formatCidr(subnet),
    mtu: (obj.mtu as number | undefined) ?? null,
    ipMasq: (obj.ipMasq as boolean | undefined) ?? false,
    uplink: (obj.uplink as string | undefined) ?? null,
    bridge: (obj.bridge as string | undefined) ?? DEFAULTS.bridge,
    stateDir: (obj.stateDir as string | undefined) ?? DEFAULTS.stateDir,
    logFile: (obj.logFile as string | undefined) ?? null,
    logLevel: (obj.logLevel as NetworkConfig['logLevel'] | undefined) ?? 'info',
    ipam: ipamOf(obj, mode, subnet),
  };
  const extras: ConfigExtras = {
    prevResult: (obj.prevResult as Record<string, unknown> | undefined) ?? null,
    validAttachments:
      (obj['cni.dev/valid-attachments'] as ConfigExtras['validAttachments'] | undefined) ??
      (obj['cni.dev/attachments'] as ConfigExtras['validAttachments'] | undefined) ??
      null,
  };
  return { config, extras };
}
