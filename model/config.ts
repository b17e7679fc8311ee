// The validated network config every layer reads: the keys all modes share, plus the mode's
// own section (`modeConfig`), typed by the mode that parsed it.
import type { CniVersion } from './cni-version.ts';

export interface IpamConfig {
  type: 'file' | 'cluster';
  /** the pool addresses come from: this node's block (or the node network, see ModeAddressing) */
  block: string;
  rangeStart: string;
  rangeEnd: string;
  gateway: string;
  dataDir: string;
  agentSocket: string;
  blockSize: number;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface CommonConfig {
  cniVersion: CniVersion;
  name: string;
  type: string;
  subnet: string;
  mtu: number | null;
  ipMasq: boolean;
  uplink: string | null;
  stateDir: string;
  logFile: string | null;
  logLevel: LogLevel;
  ipam: IpamConfig;
}

/** `M` is the mode's name, `S` the type of its own section. */
export interface NetworkConfig<M extends string = string, S = unknown> extends CommonConfig {
  mode: M;
  modeConfig: S;
}
