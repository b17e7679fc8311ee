// ipip's config section: `bgp` (Calico-style BGP with BIRD). Every key is optional: the original
// plugin's file ({"mode":"ipip","subnet":"10.244.0.0/16"}) means an iBGP full mesh in AS 64512
// with every pod route through the IPIP tunnel. Passwords are never in the config: it names
// files (0600) that the node agent reads; the plugin never needs them.
import { CniError, Code } from '../../../model/errors.ts';
import { checkBgpSettings, BGP_DEFAULTS, IPIP_MODES, type BgpSettings, type IpipMode } from '../../bird/view.ts';

export interface ExternalPeerConfig {
  address: string;
  asn: number;
  /** a file holding the TCP MD5 password of the session */
  passwordFile?: string;
}

/** The `bgp` section as validated: BgpSettings without passwords, with the files that hold them. */
export interface BgpConfig extends Omit<BgpSettings, 'externalPeers' | 'meshPassword'> {
  asn: number;
  ipipMode: IpipMode;
  externalPeers: ExternalPeerConfig[];
  /** a file holding the password of the sessions between nodes */
  meshPasswordFile?: string;
}

export interface IpipConfig {
  bgp: BgpConfig;
}

const u32 = (description: string, minimum = 1) => ({ type: 'integer', minimum, maximum: 4294967295, description });
const seconds = (description: string, minimum = 1) => ({ type: 'integer', minimum, maximum: 65535, description });
const obj = (properties: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ type: 'object', additionalProperties: false, properties, ...extra });

export const schema = {
  bgp: obj({
    asn: u32(`this cluster's AS number (default ${BGP_DEFAULTS.asn})`),
    ipipMode: { enum: [...IPIP_MODES], description: 'always: every pod route through the IPIP tunnel (default); crossSubnet: only towards nodes outside this node\'s underlay subnet; never: plain routing' },
    externalPeers: {
      type: 'array',
      maxItems: 64,
      description: 'routers outside the cluster (eBGP): they receive this node\'s block',
      items: obj({
        address: { type: 'string', description: 'the router\'s IPv4 address' },
        asn: u32('the router\'s AS number'),
        passwordFile: { $ref: '#/$defs/absPath', description: 'file holding the session\'s TCP MD5 password (read by the node agent)' },
      }, { required: ['address', 'asn'] }),
    },
    routeReflector: obj({ clusterId: { type: ['string', 'integer'], description: 'route reflector cluster id (dotted quad or number)' } }, { required: ['clusterId'], description: 'this node reflects routes to the others' }),
    reflectors: { type: 'array', maxItems: 64, items: { type: 'string' }, description: 'underlay addresses of the route reflectors: peer with them instead of a full mesh' },
    meshPasswordFile: { $ref: '#/$defs/absPath', description: 'file holding the password of the sessions between nodes (read by the node agent)' },
    timers: obj({
      holdTime: seconds(`seconds (default ${BGP_DEFAULTS.timers.holdTime}; 0: no hold timer)`, 0),
      keepaliveTime: seconds(`seconds (default ${BGP_DEFAULTS.timers.keepaliveTime})`),
      connectDelayTime: seconds(`seconds (default ${BGP_DEFAULTS.timers.connectDelayTime})`),
      connectRetryTime: seconds(`seconds (default ${BGP_DEFAULTS.timers.connectRetryTime})`),
      errorWaitTime: { type: 'array', items: seconds('seconds'), minItems: 2, maxItems: 2, description: '[minimum, maximum] seconds' },
    }),
    gracefulRestart: obj({
      enabled: { type: 'boolean', description: 'default true' },
      restartTime: { type: 'integer', minimum: 1, maximum: 4095, description: `seconds peers keep this node's routes while its BIRD restarts (default ${BGP_DEFAULTS.gracefulRestart.restartTime})` },
      waitTime: seconds(`seconds a recovering BIRD waits for its sessions (default ${BGP_DEFAULTS.gracefulRestart.waitTime})`),
    }),
    tunnelDevice: { $ref: '#/$defs/ifName', description: `the IPIP device (default ${BGP_DEFAULTS.tunnelDevice}, the kernel's fallback device)` },
    kernel: obj({
      table: u32(`kernel table BIRD installs routes into (default ${BGP_DEFAULTS.kernel.table})`),
      metric: u32(`metric of BIRD's routes (default ${BGP_DEFAULTS.kernel.metric})`, 0),
      scanTime: seconds(`seconds between kernel table scans (default ${BGP_DEFAULTS.kernel.scanTime})`),
    }),
  }, { description: 'BGP (BIRD) settings of the ipip mode' }),
};

/** "bgp.externalPeers[0].asn" as the schema's errors name it: "bgp.externalPeers.0.asn". */
function schemaStyle(field: string): string {
  return field.replace(/\[(\d+)\]/g, '.$1');
}

/** A BGP setting's error as the network config's (code 7 naming the field the schema's way). */
export function asConfigError(e: unknown): unknown {
  if (!(e instanceof CniError) || !e.message.startsWith('invalid bgp setting: ')) return e;
  const field = schemaStyle(e.message.slice('invalid bgp setting: '.length));
  return new CniError(Code.InvalidConfig, `invalid network config: ${field}`, schemaStyle(e.details));
}

export function parse(raw: Record<string, unknown>): IpipConfig {
  const b = (raw.bgp ?? {}) as Record<string, unknown>;
  const peers = (b.externalPeers ?? []) as ExternalPeerConfig[];
  const bgp: BgpConfig = {
    ...(b as Partial<BgpConfig>),
    asn: (b.asn as number | undefined) ?? BGP_DEFAULTS.asn,
    ipipMode: (b.ipipMode as IpipMode | undefined) ?? 'always',
    externalPeers: peers.map((p) => ({ address: p.address, asn: p.asn, ...(p.passwordFile ? { passwordFile: p.passwordFile } : {}) })),
  };
  try {
    // What the schema cannot say: unicast IPv4 addresses, a peer listed twice, keepalive below
    // hold, a cluster id's form. Passwords are checked when the agent reads their files.
    checkBgpSettings({ ...bgp, externalPeers: bgp.externalPeers.map((p) => ({ address: p.address, asn: p.asn })) });
  } catch (e) {
    throw asConfigError(e);
  }
  return { bgp };
}

/** True when pods' traffic to other nodes may be encapsulated (the pod MTU leaves room for it). */
export function encapsulates(bgp: Pick<BgpConfig, 'ipipMode'>): boolean {
  return bgp.ipipMode !== 'never';
}

/** The IPIP device: the kernel's fallback tunl0 unless configured. */
export function tunnelOf(bgp: Pick<BgpConfig, 'tunnelDevice'>): string {
  return bgp.tunnelDevice ?? BGP_DEFAULTS.tunnelDevice;
}

/** IPIP adds an outer IPv4 header. */
export const IPIP_OVERHEAD = 20;
