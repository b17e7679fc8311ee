// Entries of the vxlan dataplane's maps as `bpftool` arguments, byte for byte as
// bpf/testcni_maps.h lays them out (pure: no I/O). Addresses are network order; other
// integers host order, which is little-endian on every target testcni builds for.
import { parseIp, parseCidr } from '../lib/ipv4.ts';
import { ifindexToken } from '../model/plan.ts';

/** An ifindex only the running node knows (model/plan.ts ifindexToken): four bytes of a value,
 *  written as one token the executor replaces. */
export interface LinkIndex {
  ifindexOf: string;
}
/** A byte of a key or value, or a late-bound ifindex standing for four. */
export type Byte = number | LinkIndex;

export interface MapSpec {
  /** kernel object name (at most 15 characters), also the pin file's name */
  name: string;
  type: 'hash' | 'lpm_trie' | 'array';
  keySize: number;
  valueSize: number;
  /** map_flags at creation: 1 = BPF_F_NO_PREALLOC, which an LPM trie requires */
  flags: number;
}

export const ENDPOINTS: MapSpec = { name: 'testcni_eps', type: 'hash', keySize: 4, valueSize: 16, flags: 0 };
export const REMOTE: MapSpec = { name: 'testcni_remote', type: 'lpm_trie', keySize: 8, valueSize: 12, flags: 1 };
export const CONFIG: MapSpec = { name: 'testcni_cfg', type: 'array', keySize: 4, valueSize: 16, flags: 0 };
export const MAPS: readonly MapSpec[] = [ENDPOINTS, REMOTE, CONFIG];

export const DEFAULT_ENDPOINTS = 16384;
export const DEFAULT_REMOTE = 4096;
export const DEFAULT_TTL = 64;
export const MAX_VNI = 0xffffff;

/** Program names in the object (bpf/vxlan.c), also their pin files' names. */
export const PROGRAMS = {
  fromPod: 'tcni_from_pod',
  fromVxlan: 'tcni_from_vxlan',
  toVxlan: 'tcni_to_vxlan',
} as const;

export interface Endpoint {
  /** the pod's IPv4 address */
  ip: string;
  /** ifindex of the host side of the pod's veth, in the node's namespace */
  ifindex: number | LinkIndex;
  podMac: string;
  hostMac: string;
}

export interface RemotePrefix {
  /** a remote node's pod block, or its underlay address as a /32 */
  cidr: string;
  /** the remote node's underlay IPv4 address */
  nodeIp: string;
  /** the remote node's VXLAN device MAC */
  vtepMac: string;
}

export interface Config {
  vxlanIfindex: number | LinkIndex;
  vni: number;
  vxlanMac: string;
  ttl?: number;
}

export interface Entry {
  key: number[];
  value: Byte[];
}

/** An entry read back from a map: bytes only. */
export interface ReadEntry {
  key: number[];
  value: number[];
}

function ipBytes(ip: string): number[] {
  const n = parseIp(ip);
  if (n === null) throw new Error(`not an IPv4 address: ${ip}`);
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

function macBytes(mac: string): number[] {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new Error(`not a MAC address: ${mac}`);
  return mac.split(':').map((h) => parseInt(h, 16));
}

function u32le(n: number, what: string): number[] {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`${what} out of range: ${n}`);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
}

function ifindexBytes(i: number | LinkIndex): Byte[] {
  if (typeof i !== 'number') return [i];
  if (i < 1) throw new Error(`ifindex out of range: ${i}`);
  return u32le(i, 'ifindex');
}

/** The links whose ifindex a value leaves to the executor. */
export function linksOf(bytes: readonly Byte[]): string[] {
  return bytes.filter((b): b is LinkIndex => typeof b !== 'number').map((b) => b.ifindexOf);
}

export function endpointKey(ip: string): number[] {
  return ipBytes(ip);
}

export function endpointEntry(ep: Endpoint): Entry {
  return { key: endpointKey(ep.ip), value: [...ifindexBytes(ep.ifindex), ...macBytes(ep.podMac), ...macBytes(ep.hostMac)] };
}

/** LPM key: prefix length (host order), then the network address (host bits cleared). */
export function remoteKey(cidr: string): number[] {
  const c = parseCidr(cidr);
  if (c === null) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  return [...u32le(c.prefix, 'prefix'), c.base >>> 24, (c.base >>> 16) & 0xff, (c.base >>> 8) & 0xff, c.base & 0xff];
}

export function remoteEntry(r: RemotePrefix): Entry {
  return { key: remoteKey(r.cidr), value: [...ipBytes(r.nodeIp), ...macBytes(r.vtepMac), 0, 0] };
}

export const CONFIG_KEY = [0, 0, 0, 0];

export function configEntry(c: Config): Entry {
  if (!Number.isInteger(c.vni) || c.vni < 0 || c.vni > MAX_VNI) throw new Error(`VNI out of range: ${c.vni}`);
  const ttl = c.ttl ?? DEFAULT_TTL;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) throw new Error(`TTL out of range: ${ttl}`);
  return { key: CONFIG_KEY, value: [...ifindexBytes(c.vxlanIfindex), ...u32le(c.vni, 'VNI'), ...macBytes(c.vxlanMac), ttl, 0] };
}

const hex = (bytes: readonly Byte[]) => bytes.map((b) => (typeof b === 'number' ? b.toString(16).padStart(2, '0') : ifindexToken(b.ifindexOf)));

/** `key hex .. value hex ..`, to follow `bpftool map update pinned PATH`. */
export function updateArgs(e: Entry): string[] {
  return ['key', 'hex', ...hex(e.key), 'value', 'hex', ...hex(e.value)];
}

/** `key hex ..`, to follow `bpftool map delete|lookup pinned PATH`. */
export function keyArgs(key: number[]): string[] {
  return ['key', 'hex', ...hex(key)];
}

/** What `bpftool -j map lookup` prints for an entry (maps created without BTF), for a $text probe. */
export function lookupJson(e: Entry): string {
  const h = (bytes: Byte[]) => bytes.map((b) => (typeof b === 'number' ? `0x${b.toString(16).padStart(2, '0')}` : ifindexToken(b.ifindexOf)));
  return JSON.stringify({ key: h(e.key), value: h(e.value) });
}

/** Bytes of one `bpftool -j map dump` / `lookup` key or value ("0x0a" strings). */
export function parseHexBytes(items: string[]): number[] {
  return items.map((s) => {
    if (!/^0x[0-9a-f]{2}$/i.test(s)) throw new Error(`not a bpftool byte: ${s}`);
    return parseInt(s, 16);
  });
}

const ip = (b: number[]) => b.join('.');
const mac = (b: number[]) => hex(b).join(':');
/** A value's bytes as `bpftool` prints them in hex, for comparisons. */
export const hexText = (bytes: readonly Byte[]) => hex(bytes).join(' ');
const u32 = (b: number[]) => (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;

export function decodeEndpoint(e: ReadEntry): Endpoint & { ifindex: number } {
  return { ip: ip(e.key), ifindex: u32(e.value.slice(0, 4)), podMac: mac(e.value.slice(4, 10)), hostMac: mac(e.value.slice(10, 16)) };
}

export function decodeRemote(e: ReadEntry): RemotePrefix {
  return { cidr: `${ip(e.key.slice(4, 8))}/${u32(e.key.slice(0, 4))}`, nodeIp: ip(e.value.slice(0, 4)), vtepMac: mac(e.value.slice(4, 10)) };
}

export function decodeConfig(e: ReadEntry): Required<Config> & { vxlanIfindex: number } {
  return { vxlanIfindex: u32(e.value.slice(0, 4)), vni: u32(e.value.slice(4, 8)), vxlanMac: mac(e.value.slice(8, 14)), ttl: e.value[14]! };
}

/** Entries of `bpftool -j map dump` output. */
export function parseDump(json: unknown): ReadEntry[] {
  if (!Array.isArray(json)) throw new Error('bpftool map dump: expected a JSON array');
  return json.map((x: { key?: unknown; value?: unknown }) => {
    if (!Array.isArray(x?.key) || !Array.isArray(x?.value)) throw new Error('bpftool map dump: entry without key/value bytes');
    return { key: parseHexBytes(x.key as string[]), value: parseHexBytes(x.value as string[]) };
  });
}

/** `bpftool map create` arguments for one map, pinned at `path`, sized `entries`. */
export function createArgs(spec: MapSpec, path: string, entries: number): string[] {
  if (!Number.isInteger(entries) || entries < 1) throw new Error(`${spec.name}: entries out of range: ${entries}`);
  return ['map', 'create', path, 'type', spec.type, 'key', String(spec.keySize), 'value', String(spec.valueSize),
    'entries', String(entries), 'name', spec.name, 'flags', String(spec.flags)];
}

/**
 * `bpftool prog loadall` arguments: every program of the object pinned under progDir, each map
 * replaced by the one already pinned in mapDir (so the sizes are the node's, not the object's).
 */
export function loadallArgs(object: string, progDir: string, mapDir: string): string[] {
  return ['prog', 'loadall', object, progDir, 'type', 'classifier',
    ...MAPS.flatMap((m) => ['map', 'name', m.name, 'pinned', `${mapDir}/${m.name}`])];
}
