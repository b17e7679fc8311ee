// vxlan's config section: the VXLAN network (VNI, UDP port, device, MTU), the BPF maps' sizes,
// where bpffs is, and the device's tx checksum offload. The original's file carries none of it
// (`{"mode":"vxlan","subnet":"10.244.0.0"}`): every key has a default.
import { badField, ifNameField } from '../../config-fields.ts';
import type { CommonConfig } from '../../../model/config.ts';

export interface VxlanConfig {
  /** VXLAN network identifier: traffic with another VNI is dropped */
  vni: number;
  /** UDP destination port of the VXLAN packets */
  port: number;
  /** the node's external (collect_md) VXLAN device */
  device: string;
  /** MTU of the device and the pods; null: the underlay's less VXLAN_OVERHEAD */
  mtu: number | null;
  /** capacity of the local-endpoint map (pods on this node) */
  maxEndpoints: number;
  /** capacity of the remote map, in other nodes' blocks (each node takes two entries: its block
   *  and its underlay address) */
  maxRemoteBlocks: number;
  /** where bpffs is mounted (mounted there when it is not) */
  bpffs: string;
  /** tx checksum offload on the VXLAN device; `auto`: off on kernels before 5.7, whose offload
   *  bug it works around, on from 5.7 (off also turns TSO off through the device: README) */
  txChecksumOffload: boolean | 'auto';
}

/** The original's VNI; 8472 is what the kernel (and Flannel) use when no port is given. */
export const DEFAULTS = {
  vni: 13190,
  port: 8472,
  device: 'testcni.vxlan',
  maxEndpoints: 16384,
  maxRemoteBlocks: 4096,
  bpffs: '/sys/fs/bpf',
} as const;

/** Outer Ethernet is not counted in an MTU: IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD = 50;
export const MAX_VNI = 0xffffff;
export const LIMITS = { maxEndpoints: 1 << 20, maxRemoteBlocks: 1 << 16 } as const;

const int = (minimum: number, maximum: number, description: string) => ({ type: 'integer', minimum, maximum, description });

export const schema = {
  vxlan: {
    type: 'object',
    description: 'the VXLAN network and its eBPF dataplane',
    properties: {
      vni: int(1, MAX_VNI, `VXLAN network identifier (default ${DEFAULTS.vni})`),
      port: int(1, 65535, `UDP port (default ${DEFAULTS.port}; 4789 is the IANA port)`),
      device: { $ref: '#/$defs/ifName', description: `the node's VXLAN device (default ${DEFAULTS.device})` },
      mtu: int(576, 65535, `MTU of the VXLAN device and the pods (default: the underlay's less ${VXLAN_OVERHEAD})`),
      maxEndpoints: int(1, LIMITS.maxEndpoints, `pods per node the endpoint map holds (default ${DEFAULTS.maxEndpoints})`),
      maxRemoteBlocks: int(1, LIMITS.maxRemoteBlocks, `other nodes' blocks the remote map holds (default ${DEFAULTS.maxRemoteBlocks})`),
      bpffs: { $ref: '#/$defs/absPath', description: `where bpffs is mounted (default ${DEFAULTS.bpffs})` },
      txChecksumOffload: { enum: [true, false, 'auto'], description: 'tx checksum offload on the VXLAN device (default auto: off before Linux 5.7, on from 5.7)' },
    },
    additionalProperties: false,
  },
};

export function parse(raw: Record<string, unknown>, common: CommonConfig): VxlanConfig {
  const s = (raw.vxlan ?? {}) as Record<string, unknown>;
  const mtu = (s.mtu as number | undefined) ?? null;
  // The pod MTU cannot be above what the device carries.
  if (mtu !== null && common.mtu !== null && common.mtu > mtu) badField('mtu', `${common.mtu} is above vxlan.mtu ${mtu}`);
  const bpffs = ((s.bpffs as string | undefined) ?? DEFAULTS.bpffs).replace(/\/+$/, '') || '/';
  if (/\s/.test(bpffs)) badField('vxlan.bpffs', 'may not contain white space (bpftool batches are split on it)');
  return {
    vni: (s.vni as number | undefined) ?? DEFAULTS.vni,
    port: (s.port as number | undefined) ?? DEFAULTS.port,
    device: ifNameField('vxlan.device', s.device) ?? DEFAULTS.device,
    mtu,
    maxEndpoints: (s.maxEndpoints as number | undefined) ?? DEFAULTS.maxEndpoints,
    maxRemoteBlocks: (s.maxRemoteBlocks as number | undefined) ?? DEFAULTS.maxRemoteBlocks,
    bpffs,
    txChecksumOffload: (s.txChecksumOffload as boolean | 'auto' | undefined) ?? 'auto',
  };
}
