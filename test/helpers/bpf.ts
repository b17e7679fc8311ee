// Fixtures of the eBPF dataplane tests: bpffs mounted for the test's lifetime (and unmounted
// only when the test mounted it and left it empty), crafted packets, and a pcap reader.
import { existsSync, readdirSync, readFileSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { TestContext } from 'node:test';
import { Scope } from './e2e.ts';
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { ROOT, sh, uniquePrefix, inNetns, type TestNode } from './netns.ts';
import { uplinkNode } from './uplink.ts';

export const BPFFS = '/sys/fs/bpf';
export const VXLAN_OBJECT = join(ROOT, 'dist', 'bpf', 'vxlan.o');
/** Files the kernel puts into every new bpffs (bpf_preload). */
const BPFFS_OWN_FILES = new Set(['maps.debug', 'progs.debug']);

function has(cmd: string): boolean {
  return ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(join(d, cmd)));
}

/** Why the BPF tests cannot run here, or null when they can. */
export function bpfSkipReason(tools: string[] = []): string | null {
  if (process.getuid?.() !== 0) return 'needs root (BPF programs, network namespaces)';
  for (const t of ['bpftool', 'tc', 'ip', 'nsenter', 'mount', 'umount', ...tools]) {
    if (!has(t)) return `needs ${t} (scripts/setup.sh installs it)`;
  }
  if (!existsSync(VXLAN_OBJECT)) return `needs ${VXLAN_OBJECT}: npm run build compiles it when clang is installed (scripts/setup.sh)`;
  return null;
}

export function isBpffs(dir: string): boolean {
  return sh(['stat', '-f', '-c', '%T', dir], { allowFail: true }).stdout.trim() === 'bpf_fs';
}

/**
 * Mounts bpffs on /sys/fs/bpf unless it is there already. The returned function undoes only
 * what this call did: it unmounts when this call mounted and nothing but the kernel's own
 * files is left (someone else may have started using it meanwhile).
 */
export function ensureBpffs(): () => void {
  if (isBpffs(BPFFS)) return () => {};
  sh(['mount', '-t', 'bpf', 'bpf', BPFFS]);
  return () => {
    const left = readdirSync(BPFFS).filter((f) => !BPFFS_OWN_FILES.has(f));
    if (left.length === 0 && isBpffs(BPFFS)) sh(['umount', BPFFS], { allowFail: true });
  };
}

/** Removes a network's pin root, and testcni's directory in bpffs once nothing else is in it (so
 *  bpffs can be unmounted by whoever mounted it). */
export function removePins(root: string): void {
  rmSync(root, { recursive: true, force: true });
  const parent = dirname(root);
  try {
    if (parent.endsWith('/testcni') && readdirSync(parent).length === 0) rmdirSync(parent);
  } catch { /* another test's pins are there, or it is gone already */ }
}

export interface BpfScope {
  prefix: string;
  scope: Scope;
  /** this test's directory in bpffs */
  pinRoot: string;
  /** a temporary directory */
  tmp: string;
}

/** A cleanup scope with bpffs mounted, a pin directory and a temporary directory, all removed after the test. */
export function bpfScope(t: TestContext, tag: string): BpfScope {
  const prefix = uniquePrefix(tag);
  const scope = new Scope(t, prefix);
  scope.defer(ensureBpffs());
  const pinRoot = `${BPFFS}/${prefix}`;
  scope.defer(() => rmSync(pinRoot, { recursive: true, force: true }));
  const tmp = mkdtempSync(join(tmpdir(), `${prefix}-`));
  scope.defer(() => rmSync(tmp, { recursive: true, force: true }));
  return { prefix, scope, pinRoot, tmp };
}

export function macBytes(mac: string): number[] {
  return mac.split(':').map((h) => parseInt(h, 16));
}

function ipBytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

export function ipChecksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) sum += header.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface Ipv4Frame {
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  ttl?: number;
  /** bytes after the IPv4 header (an ICMP echo request by default) */
  payload?: Buffer;
}

/** An Ethernet + IPv4 frame with a valid header checksum. */
export function ipv4Frame(f: Ipv4Frame): Buffer {
  const payload = f.payload ?? Buffer.from([8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + payload.length, 2);
  ip.writeUInt16BE(1, 4);
  ip[8] = f.ttl ?? 64;
  ip[9] = 1; // ICMP
  Buffer.from(ipBytes(f.src)).copy(ip, 12);
  Buffer.from(ipBytes(f.dst)).copy(ip, 16);
  ip.writeUInt16BE(ipChecksum(ip), 10);
  return Buffer.concat([Buffer.from([...macBytes(f.dstMac), ...macBytes(f.srcMac), 0x08, 0x00]), ip, payload]);
}

export interface ParsedFrame {
  dstMac: string;
  srcMac: string;
  ethertype: number;
  /** IPv4 only */
  ip?: { src: string; dst: string; proto: number; ttl: number; checksumOk: boolean; body: Buffer };
}

const macText = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
const ipText = (b: Buffer) => [...b].join('.');

export function parseFrame(frame: Buffer): ParsedFrame {
  const out: ParsedFrame = { dstMac: macText(frame.subarray(0, 6)), srcMac: macText(frame.subarray(6, 12)), ethertype: frame.readUInt16BE(12) };
  if (out.ethertype === 0x0800 && frame.length >= 34) {
    const ihl = (frame[14]! & 0x0f) * 4;
    const header = frame.subarray(14, 14 + ihl);
    out.ip = {
      src: ipText(frame.subarray(26, 30)),
      dst: ipText(frame.subarray(30, 34)),
      proto: frame[23]!,
      ttl: frame[22]!,
      checksumOk: ipChecksum(header) === 0,
      body: frame.subarray(14 + ihl, 14 + frame.readUInt16BE(16)),
    };
  }
  return out;
}

/** The frames of a classic pcap file (Ethernet link type), as captured by tcpdump -w. */
export function readPcap(path: string): Buffer[] {
  const data = readFileSync(path);
  if (data.length < 24) return [];
  const magic = data.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && data.readUInt32BE(0) !== 0xa1b2c3d4 && data.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`${path}: not a pcap file`);
  const u32 = (o: number) => (le ? data.readUInt32LE(o) : data.readUInt32BE(o));
  if (u32(20) !== 1) throw new Error(`${path}: link type ${u32(20)}, expected Ethernet`);
  const frames: Buffer[] = [];
  for (let o = 24; o + 16 <= data.length;) {
    const caplen = u32(o + 8);
    frames.push(data.subarray(o + 16, o + 16 + caplen));
    o += 16 + caplen;
  }
  return frames;
}

export interface VxlanPacket {
  outer: { src: string; dst: string; srcPort: number; dstPort: number; udpChecksum: number };
  vni: number;
  inner: ParsedFrame;
}

/** The VXLAN packet inside an underlay frame, or null when it is something else. */
export function vxlanOf(frame: Buffer, port: number): VxlanPacket | null {
  const f = parseFrame(frame);
  if (!f.ip || f.ip.proto !== 17 || f.ip.body.length < 16) return null;
  const udp = f.ip.body;
  if (udp.readUInt16BE(2) !== port) return null;
  const vx = udp.subarray(8);
  if ((vx[0]! & 0x08) === 0) return null;
  return {
    outer: { src: f.ip.src, dst: f.ip.dst, srcPort: udp.readUInt16BE(0), dstPort: udp.readUInt16BE(2), udpChecksum: udp.readUInt16BE(6) },
    vni: vx.readUIntBE(4, 3),
    inner: parseFrame(vx.subarray(8)),
  };
}

export interface Background {
  pid: number;
  /** output so far */
  stdout(): string;
  /** SIGINT (tcpdump flushes its file, iperf3 its report), then SIGKILL after a while; resolves on exit */
  stop(): Promise<void>;
}

/**
 * Starts argv inside a netns (nsenter keeps the mount namespace) and resolves once `ready`
 * appears on its stdout or stderr. The caller stops it by PID through stop().
 */
export function startInNetns(ns: string, argv: string[], ready: RegExp, timeoutMs = 5000): Promise<Background> {
  const child = spawn('nsenter', [`--net=/var/run/netns/${ns}`, '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let exited = false;
  const exit = new Promise<void>((resolve) => child.on('close', () => { exited = true; resolve(); }));
  const handle: Background = {
    pid: child.pid!,
    stdout: () => out,
    stop: async () => {
      if (exited) return;
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exit;
      clearTimeout(timer);
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { void handle.stop(); reject(new Error(`${argv[0]} not ready after ${timeoutMs} ms: ${out}`)); }, timeoutMs);
    const onData = (b: Buffer) => {
      out += b.toString();
      if (ready.test(out)) { clearTimeout(timer); resolve(handle); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exit.then(() => { clearTimeout(timer); if (!ready.test(out)) reject(new Error(`${argv[0]} exited before it was ready: ${out}`)); });
  });
}

/**
 * A simulated node for the vxlan mode run as a black box: an uplink (eth0, MTU 1500, default
 * route), bpffs mounted for the test, and the network's pin directory removed at the end. The
 * plugin ensures the node state on the first ADD (file IPAM, no agent).
 */
export function vxlanTestNode(scope: Scope, tag = ''): { node: TestNode; config: (extra?: Record<string, unknown>) => Record<string, unknown>; pins: string; bpfState: () => Record<string, unknown> } {
  scope.defer(ensureBpffs());
  const { node } = uplinkNode(scope, tag);
  const pins = `${BPFFS}/testcni/${node.config().name as string}`;
  scope.defer(() => removePins(pins));
  const config = (extra: Record<string, unknown> = {}) => node.config({ mode: 'vxlan', ...extra });
  /** What the dataplane holds of pods: the endpoint entries and the programs attached (by device). */
  const bpfState = () => {
    const dir = readdirSync(pins)[0];
    const eps = dir ? inNetns(node.name, ['bpftool', '-j', 'map', 'dump', 'pinned', `${pins}/${dir}/maps/testcni_eps`], { allowFail: true }).stdout : '';
    const net = JSON.parse(inNetns(node.name, ['bpftool', '-j', 'net', 'show']).stdout)[0]?.tc ?? [];
    return { endpoints: eps ? JSON.parse(eps) : null, attached: net.map((a: { devname: string; kind: string; name: string }) => `${a.devname} ${a.kind} ${a.name}`).sort() };
  };
  return { node, config, pins, bpfState };
}
