// The network config, from a decoded object to what every layer reads: the shape checked against
// the mode's closed schema, then what a schema cannot check (CIDR arithmetic), the defaults, and
// the mode's own section parsed by the mode. Shared by the plugin and the node agent.
import type { CniVersion } from '../model/cni-version.ts';
import type { CommonConfig, IpamConfig, LogLevel, NetworkConfig } from '../model/config.ts';
import type { AnyMode } from '../planner/mode.ts';
import type { ModeRegistry } from '../planner/registry.ts';
import { badField, cidrField, ipField, ifNameField } from '../planner/config-fields.ts';
import { formatCidr, formatIp, contains, containsCidr, nthBlock, lastIp, type Cidr } from '../lib/ipv4.ts';
import { checkConfigShape } from './validate.ts';

export const DEFAULTS = {
  stateDir: '/var/lib/testcni',
  ipamDataDir: '/var/lib/cni/networks',
  agentSocket: '/run/testcni/agent.sock',
  blockSize: 24,
} as const;

/** The embedded default network: the default mode, node-local file IPAM. */
export const DEFAULT_NETWORK = {
  cniVersion: '1.1.0',
  name: 'testcni',
  type: 'testcni',
  subnet: '10.244.0.0/16',
} as const;

function subnetOf(raw: Record<string, unknown>, mode: AnyMode): Cidr {
  // The node network of a `subnet`-pool mode may also be written as host-local's ipam.subnet.
  const ipamSubnet = mode.addressing.pool === 'subnet' ? (raw.ipam as { subnet?: unknown } | undefined)?.subnet : undefined;
  if (typeof ipamSubnet === 'string' && typeof raw.subnet === 'string') {
    const [a, b] = [cidrField('ipam.subnet', ipamSubnet), cidrField('subnet', raw.subnet)];
    if (formatCidr(a) !== formatCidr(b)) badField('ipam.subnet', `${formatCidr(a)} differs from subnet ${formatCidr(b)}: give one of them`);
  }
  const text = raw.subnet ?? ipamSubnet;
  if (typeof text !== 'string') badField('subnet', mode.addressing.pool === 'subnet' ? 'is required (or ipam.subnet)' : 'is required');
  const bare = mode.addressing.bareSubnetPrefix;
  if (bare !== undefined && !text.includes('/')) return cidrField('subnet', `${text}/${bare}`);
  return cidrField('subnet', text);
}

function ipamOf(raw: Record<string, unknown>, mode: AnyMode, subnet: Cidr): IpamConfig {
  const ipam = (raw.ipam ?? {}) as Record<string, unknown>;
  const explicitSize = ipam.blockSize as number | undefined;
  if (explicitSize !== undefined && explicitSize < subnet.prefix) {
    badField('ipam.blockSize', `/${explicitSize} is larger than the subnet /${subnet.prefix}`);
  }
  // Unset, the block is a /24 or, in a smaller subnet, the whole subnet: a /26 node network
  // must not fail over a field nobody wrote.
  const blockSize = explicitSize ?? Math.max(DEFAULTS.blockSize, subnet.prefix);
  let block: Cidr;
  if (typeof ipam.block === 'string') {
    block = cidrField('ipam.block', ipam.block);
    if (!containsCidr(subnet, block)) badField('ipam.block', `${formatCidr(block)} is outside subnet ${formatCidr(subnet)}`);
  } else if (mode.addressing.pool === 'subnet') {
    block = subnet; // the subnet is the node network itself
  } else {
    block = nthBlock(subnet, blockSize, 0)!;
  }
  if (block.prefix > 30) badField('ipam.block', `/${block.prefix} leaves no room for pods`);
  const gateway = typeof ipam.gateway === 'string' ? ipField('ipam.gateway', ipam.gateway) : block.base + 1;
  if (!contains(block, gateway)) badField('ipam.gateway', `${formatIp(gateway)} is outside ${formatCidr(block)}`);
  const first = typeof ipam.rangeStart === 'string' ? ipField('ipam.rangeStart', ipam.rangeStart) : block.base + 1;
  const last = typeof ipam.rangeEnd === 'string' ? ipField('ipam.rangeEnd', ipam.rangeEnd) : lastIp(block) - 1;
  for (const [field, ip] of [['ipam.rangeStart', first], ['ipam.rangeEnd', last]] as const) {
    if (!contains(block, ip)) badField(field, `${formatIp(ip)} is outside ${formatCidr(block)}`);
    if (ip === block.base || ip === lastIp(block)) badField(field, `${formatIp(ip)} is the network or broadcast address of ${formatCidr(block)}`);
  }
  if (first > last) badField('ipam.rangeStart', `${formatIp(first)} is after rangeEnd ${formatIp(last)}`);
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

/** Validates a decoded config object whose `cniVersion` the caller has already accepted. */
export function loadNetworkConfig(obj: Record<string, unknown>, cniVersion: CniVersion, registry: ModeRegistry): NetworkConfig {
  checkConfigShape(obj, registry);
  const mode = registry.require((obj.mode as string | undefined) ?? registry.defaultMode);
  const subnet = subnetOf(obj, mode);
  const common: CommonConfig = {
    cniVersion,
    name: obj.name as string,
    type: obj.type as string,
    subnet: formatCidr(subnet),
    mtu: (obj.mtu as number | undefined) ?? null,
    ipMasq: (obj.ipMasq as boolean | undefined) ?? false,
    uplink: ifNameField('uplink', obj.uplink) ?? null,
    stateDir: (obj.stateDir as string | undefined) ?? DEFAULTS.stateDir,
    logFile: (obj.logFile as string | undefined) ?? null,
    logLevel: (obj.logLevel as LogLevel | undefined) ?? 'info',
    ipam: ipamOf(obj, mode, subnet),
  };
  return { ...common, mode: mode.name, modeConfig: mode.parse(obj, common) };
}
