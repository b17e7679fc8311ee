// The tc programs on crafted packets through BPF_PROG_TEST_RUN (`bpftool prog run`), loaded
// and pinned exactly as a node does it, on maps created with non-default sizes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from '../helpers/netns.ts';
import { bpfSkipReason, bpfScope, VXLAN_OBJECT, ipv4Frame, parseFrame, type Ipv4Frame } from '../helpers/bpf.ts';
import { ENDPOINTS, REMOTE, CONFIG, PROGRAMS, endpointEntry, remoteEntry, configEntry, updateArgs, type Entry } from '../../bpf/maps.ts';
import { nodeEnsureSteps, mapPath, progPath, TOOLS, type NodeDataplane } from '../../planner/modes/vxlan/dataplane.ts';
import { resolveTools, findObject } from '../../executor/facts.ts';
import { argvOf } from '../../model/plan.ts';
import { dirname } from 'node:path';

const DEFAULT_TOOLS = resolveTools([...TOOLS]) as unknown as Record<string, string>;

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;

// BPF_PROG_TEST_RUN runs the program on an skb of the loopback device (ifindex 1): the sender's veth.
const POD_A = { ip: '10.244.1.2', ifindex: 1, podMac: '02:00:00:00:0a:0a', hostMac: '0a:00:00:00:0a:01' };
const POD_B = { ip: '10.244.1.3', ifindex: 77, podMac: '02:00:00:00:0b:0b', hostMac: '0a:00:00:00:0b:01' };
const VXLAN = { vxlanIfindex: 5, vni: 13190, vxlanMac: '02:00:00:00:01:01' };
const NODE2 = { nodeIp: '198.18.0.2', vtepMac: '02:00:00:00:02:01' };
const NODE9 = { nodeIp: '198.18.0.9', vtepMac: '02:00:00:00:09:01' };

const skip = bpfSkipReason();

test('tc programs on crafted packets (BPF_PROG_TEST_RUN)', { skip: skip ?? false }, async (t) => {
  const { pinRoot: pinDir, tmp } = bpfScope(t, 'bp');

  // Sizes other than the object's defaults: the pinned maps must be the ones the programs use.
  const node = {
    tools: DEFAULT_TOOLS, pinDir, object: findObject('vxlan.o', [dirname(VXLAN_OBJECT)]), endpointsSize: 100, remoteSize: 50, hostPid: process.pid, txChecksumOffload: { on: false, why: 'not used' },
  } as unknown as NodeDataplane;
  // The node's own steps for the pin directory, the maps and the programs (loaded, then moved into place).
  for (const step of nodeEnsureSteps(node).filter((s) => /^(dir|bpf\.|fs\.rename)/.test(s.id))) sh(argvOf(step));
  const update = (m: typeof ENDPOINTS, e: Entry) => sh([DEFAULT_TOOLS.bpftool, 'map', 'update', 'pinned', mapPath(node, m), ...updateArgs(e)]);
  update(ENDPOINTS, endpointEntry(POD_A));
  update(ENDPOINTS, endpointEntry(POD_B));
  update(REMOTE, remoteEntry({ cidr: '10.244.0.0/16', ...NODE9 }));
  update(REMOTE, remoteEntry({ cidr: '10.244.2.0/24', ...NODE2 }));
  update(REMOTE, remoteEntry({ cidr: `${NODE2.nodeIp}/32`, ...NODE2 }));
  update(CONFIG, configEntry(VXLAN));

  let n = 0;
  const run = (prog: string, frame: Buffer) => {
    const inFile = join(tmp, `in${++n}`);
    const outFile = join(tmp, `out${n}`);
    writeFileSync(inFile, frame);
    const r = JSON.parse(sh([DEFAULT_TOOLS.bpftool, '-j', 'prog', 'run', 'pinned', progPath(node, prog), 'data_in', inFile, 'data_out', outFile]).stdout);
    return { retval: r.retval as number, out: readFileSync(outFile) };
  };
  const fromPodA = (dst: string, extra: Partial<Ipv4Frame> = {}) => ipv4Frame({ srcMac: POD_A.podMac, dstMac: POD_A.hostMac, src: POD_A.ip, dst, ...extra });

  await t.test('the programs use the pinned maps, with the sizes given at creation', () => {
    const ids = new Map<string, { id: number; max_entries: number }>();
    for (const m of [ENDPOINTS, REMOTE, CONFIG]) ids.set(m.name, JSON.parse(sh([DEFAULT_TOOLS.bpftool, '-j', 'map', 'show', 'pinned', mapPath(node, m)]).stdout));
    assert.equal(ids.get(ENDPOINTS.name)!.max_entries, 100);
    assert.equal(ids.get(REMOTE.name)!.max_entries, 50);
    for (const prog of Object.values(PROGRAMS)) {
      const info = JSON.parse(sh([DEFAULT_TOOLS.bpftool, '-j', 'prog', 'show', 'pinned', progPath(node, prog)]).stdout);
      assert.equal(info.type, 'sched_cls');
      assert.equal(info.gpl_compatible, true);
      for (const id of info.map_ids as number[]) assert.ok([...ids.values()].some((m) => m.id === id), `${prog} uses map ${id}, not a pinned one`);
    }
  });

  await t.test('the object\'s BTF has the struct sizes bpf/maps.ts encodes', () => {
    const btf = JSON.parse(sh([DEFAULT_TOOLS.bpftool, '-j', 'btf', 'dump', 'file', VXLAN_OBJECT]).stdout) as { types: { kind: string; name: string; size: number }[] };
    const size = (name: string) => btf.types.find((x) => x.kind === 'STRUCT' && x.name === name)?.size;
    assert.deepEqual(
      [size('endpoint_key'), size('endpoint'), size('remote_key'), size('remote'), size('config')],
      [ENDPOINTS.keySize, ENDPOINTS.valueSize, REMOTE.keySize, REMOTE.valueSize, CONFIG.valueSize],
    );
  });

  await t.test('from_pod, local pod: MACs rewritten, TTL decremented with a valid checksum, redirected', () => {
    const frame = fromPodA(POD_B.ip);
    const { retval, out } = run(PROGRAMS.fromPod, frame);
    assert.equal(retval, TC_ACT_REDIRECT);
    const p = parseFrame(out);
    assert.equal(p.dstMac, POD_B.podMac);
    assert.equal(p.srcMac, POD_B.hostMac);
    assert.deepEqual([p.ip!.src, p.ip!.dst, p.ip!.ttl, p.ip!.checksumOk], [POD_A.ip, POD_B.ip, 63, true]);
    assert.deepEqual(out.subarray(34), frame.subarray(34), 'payload untouched');
  });

  await t.test('from_pod, remote block: inner MACs for the remote VXLAN device, redirected', () => {
    const { retval, out } = run(PROGRAMS.fromPod, fromPodA('10.244.2.7'));
    assert.equal(retval, TC_ACT_REDIRECT);
    const p = parseFrame(out);
    assert.deepEqual([p.srcMac, p.dstMac], [VXLAN.vxlanMac, NODE2.vtepMac]);
    assert.deepEqual([p.ip!.ttl, p.ip!.checksumOk], [63, true]);
  });

  await t.test('from_pod, longest prefix wins: the /16 entry catches what the /24 does not', () => {
    assert.equal(parseFrame(run(PROGRAMS.fromPod, fromPodA('10.244.2.200')).out).dstMac, NODE2.vtepMac);
    const r = run(PROGRAMS.fromPod, fromPodA('10.244.3.1'));
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(parseFrame(r.out).dstMac, NODE9.vtepMac);
  });

  await t.test('from_pod, a remote node\'s own address (/32): through the tunnel too', () => {
    const r = run(PROGRAMS.fromPod, fromPodA(NODE2.nodeIp));
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(parseFrame(r.out).dstMac, NODE2.vtepMac);
  });

  await t.test('from_pod, a source address that is not the sending pod\'s: dropped, whatever the destination', () => {
    for (const src of [POD_B.ip, '10.244.1.99']) {
      for (const dst of [POD_B.ip, '10.244.2.7', '192.0.2.1']) {
        const frame = ipv4Frame({ srcMac: POD_A.podMac, dstMac: POD_A.hostMac, src, dst });
        assert.equal(run(PROGRAMS.fromPod, frame).retval, TC_ACT_SHOT, `${src} -> ${dst}`);
      }
    }
  });

  await t.test('from_pod, unknown destination: to the stack, unchanged', () => {
    const frame = fromPodA('192.0.2.1');
    const r = run(PROGRAMS.fromPod, frame);
    assert.equal(r.retval, TC_ACT_OK);
    assert.deepEqual(r.out, frame);
  });

  await t.test('from_pod, TTL 1: to the stack (which answers time exceeded), unchanged', () => {
    const frame = fromPodA(POD_B.ip, { ttl: 1 });
    const r = run(PROGRAMS.fromPod, frame);
    assert.equal(r.retval, TC_ACT_OK);
    assert.deepEqual(r.out, frame);
  });

  await t.test('from_pod, truncated packets: to the stack (which drops and counts them), unchanged', () => {
    // IPv4 header claiming 60 bytes (IHL 15), only 20 present.
    const longHeader = fromPodA(POD_B.ip).subarray(0, 34);
    longHeader[14] = 0x4f;
    // Total length says 28 bytes of IP, the frame carries 20.
    const shortBody = fromPodA(POD_B.ip).subarray(0, 34);
    // An Ethernet header saying IPv4 with a bad version nibble.
    const badVersion = Buffer.from(fromPodA(POD_B.ip));
    badVersion[14] = 0x65;
    for (const frame of [longHeader, shortBody, badVersion]) {
      const r = run(PROGRAMS.fromPod, frame);
      assert.equal(r.retval, TC_ACT_OK);
      assert.deepEqual(r.out, frame);
    }
  });

  await t.test('from_pod, not IPv4 (ARP): to the stack, unchanged', () => {
    const arp = Buffer.concat([Buffer.from('ffffffffffff' + '020000000a0a' + '0806', 'hex'), Buffer.alloc(28, 1)]);
    const r = run(PROGRAMS.fromPod, arp);
    assert.equal(r.retval, TC_ACT_OK);
    assert.deepEqual(r.out, arp);
  });

  await t.test('to_vxlan, host stack traffic to a remote block: key set, remote MAC written, TTL kept', () => {
    const frame = ipv4Frame({ srcMac: VXLAN.vxlanMac, dstMac: VXLAN.vxlanMac, src: '10.244.1.1', dst: '10.244.2.7' });
    const r = run(PROGRAMS.toVxlan, frame);
    assert.equal(r.retval, TC_ACT_OK);
    const p = parseFrame(r.out);
    assert.deepEqual([p.srcMac, p.dstMac, p.ip!.ttl], [VXLAN.vxlanMac, NODE2.vtepMac, 64]);
  });

  await t.test('to_vxlan, no remote block for the destination, or a truncated packet: dropped', () => {
    const unknown = ipv4Frame({ srcMac: VXLAN.vxlanMac, dstMac: VXLAN.vxlanMac, src: '10.244.1.1', dst: '192.0.2.1' });
    assert.equal(run(PROGRAMS.toVxlan, unknown).retval, TC_ACT_SHOT);
    const truncated = Buffer.from(ipv4Frame({ srcMac: VXLAN.vxlanMac, dstMac: VXLAN.vxlanMac, src: '10.244.1.1', dst: '10.244.2.7' }).subarray(0, 34));
    assert.equal(run(PROGRAMS.toVxlan, truncated).retval, TC_ACT_SHOT);
  });

  await t.test('from_vxlan, a packet without tunnel metadata (not decapsulated by the device): dropped', () => {
    const frame = ipv4Frame({ srcMac: NODE2.vtepMac, dstMac: VXLAN.vxlanMac, src: '10.244.2.7', dst: POD_B.ip });
    assert.equal(run(PROGRAMS.fromVxlan, frame).retval, TC_ACT_SHOT);
  });
});
