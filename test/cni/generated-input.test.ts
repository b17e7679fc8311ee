// Seeded generator of bad CNI calls against the built plugin in a simulated node that holds one
// healthy attachment: every verb, faults in the environment, the config and stdin, one to three
// at a time. For each case: exit 1, exactly one CNI error object on stdout (not 999), and the
// node and pod namespaces and the state and IPAM directories unchanged. Reproduce a run with
// TESTCNI_GEN_SEED=<seed printed by the run> (and TESTCNI_GEN_CASES=<n> for more cases).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  rootSkipReason, uniquePrefix, makeNode, addNetns, delNetns, runPlugin, runPluginAsync, nodeState, treeSnapshot,
  NETNS_DIR, type TestNode, type PluginCall,
} from '../helpers/netns.ts';
import { Code } from '../../model/errors.ts';

const RESIDENT = 'resident01';
const CALLER = 'cgen01';
const CASES = Number(process.env.TESTCNI_GEN_CASES ?? 320);
const CONCURRENCY = 4;
const SEED = Number(process.env.TESTCNI_GEN_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface World {
  node: TestNode;
  pod: string;
  file: string;
  dir: string;
}

type Verb = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS';
const VERBS: Verb[] = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS'];
const ATTACHMENT_VERBS: Verb[] = ['ADD', 'DEL', 'CHECK'];

interface Case {
  /** the verb the faults were chosen for */
  base: Verb;
  /** CNI_COMMAND as sent (a fault may garble it) */
  verb: string;
  env: Record<string, string | undefined>;
  config: Record<string, unknown>;
  /** raw stdin instead of the config, when a fault replaces it */
  stdin?: string;
  faults: string[];
}

interface Fault {
  name: string;
  /** verbs for which this fault alone makes the call fail */
  verbs: Verb[];
  apply(c: Case, r: Rng, w: World): string;
}

class Rng {
  constructor(readonly next: () => number) {}
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  str(len: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'): string {
    return Array.from({ length: len }, () => alphabet[this.int(alphabet.length)]).join('');
  }
}

const REQUIRED: Record<Verb, string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: ['CNI_PATH'],
};

function setIn(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) o = (o[k] = { ...((o[k] as Record<string, unknown>) ?? {}) });
  o[keys[keys.length - 1]!] = value;
}

const BAD_IDS = ['-rf', '.hidden', 'a/b', 'a b', 'a@b', 'a~b', 'a;b', 'é', 'a\tb', 'a:b', '_x'];
const BAD_IFNAMES = ['.', '..', 'eth/0', 'eth:0', 'eth 0', 'et"h', "et'h", 'e#h', 'e;h', 'e\\h', 'abcdefghijklmnop', 'éééééééé', 'a\tb'];
const OTHER_NS = ['uts', 'ipc', 'mnt', 'pid', 'cgroup', 'user', 'time'];

const FAULTS: Fault[] = [
  { name: 'required variable missing', verbs: VERBS, apply: (c, r) => {
    const v = r.pick(REQUIRED[c.base]);
    c.env[v] = r.int(2) === 0 ? undefined : '';
    return `${v} unset`;
  } },
  { name: 'unknown CNI_COMMAND', verbs: VERBS, apply: (c, r) => {
    c.verb = r.pick(['add', 'Del', 'UPDATE', 'VERSIONS', ' ADD', 'ADD\n', r.str(1 + r.int(8), 'ABCXYZ_-')]);
    return `CNI_COMMAND=${JSON.stringify(c.verb)}`;
  } },
  { name: 'bad container id', verbs: ATTACHMENT_VERBS, apply: (c, r) => {
    const id = r.int(3) === 0 ? r.str(129 + r.int(200)) : r.pick(BAD_IDS);
    c.env.CNI_CONTAINERID = id;
    return `container id ${JSON.stringify(id.length > 20 ? `${id.slice(0, 8)}…(${id.length})` : id)}`;
  } },
  { name: 'bad interface name', verbs: ATTACHMENT_VERBS, apply: (c, r) => {
    c.env.CNI_IFNAME = r.pick(BAD_IFNAMES);
    return `ifname ${JSON.stringify(c.env.CNI_IFNAME)}`;
  } },
  { name: 'bad netns', verbs: ['ADD', 'CHECK'], apply: (c, r, w) => {
    c.env.CNI_NETNS = r.pick([`var/run/netns/${r.str(4)}`, join(NETNS_DIR, `missing${r.str(6)}`), w.file, w.dir, `/proc/self/ns/${r.pick(OTHER_NS)}`]);
    return `netns ${c.env.CNI_NETNS}`;
  } },
  { name: 'netns of the wrong kind for DEL', verbs: ['DEL'], apply: (c, r, w) => {
    c.env.CNI_NETNS = r.pick([`relative/${r.str(3)}`, w.file, w.dir, `/proc/self/ns/${r.pick(OTHER_NS)}`]);
    return `netns ${c.env.CNI_NETNS}`;
  } },
  { name: 'malformed CNI_ARGS', verbs: ATTACHMENT_VERBS, apply: (c, r) => {
    c.env.CNI_ARGS = r.pick(['K8S_POD_NAME', '=v', `a=b;${r.str(3)}`, 'IgnoreUnknown=1;x']);
    return `CNI_ARGS=${c.env.CNI_ARGS}`;
  } },
  { name: 'stdin not a JSON object', verbs: VERBS, apply: (c, r) => {
    const text = JSON.stringify(c.config);
    c.stdin = r.pick([
      '', 'null', '[]', '"testcni"', '42', 'true', '{', text.slice(0, 1 + r.int(text.length - 1)),
      Buffer.from(Array.from({ length: 1 + r.int(64) }, () => r.int(256))).toString('latin1'),
      `[${text}]`, text.replace('{', '{{'),
    ]);
    return `stdin ${JSON.stringify(c.stdin.slice(0, 24))}`;
  } },
  { name: 'cniVersion bad', verbs: VERBS, apply: (c, r) => {
    const v = r.pick([undefined, '0.1.0', '0.2.0', '1.2.0', '2.0.0', 'x', '', 1.1, null, ['1.1.0']]);
    if (v === undefined) delete c.config.cniVersion;
    else c.config.cniVersion = v;
    return `cniVersion ${JSON.stringify(v)}`;
  } },
  { name: 'required key missing', verbs: VERBS, apply: (c, r) => {
    const k = r.pick(['name', 'type', 'subnet']);
    delete c.config[k];
    return `no ${k}`;
  } },
  { name: 'wrong value', verbs: VERBS, apply: (c, r) => {
    const [field, value] = r.pick<[string, unknown]>([
      ['mtu', '1500'], ['mtu', -1], ['mtu', 70000], ['mtu', 1.5], ['ipMasq', 'yes'], ['bridge', 7], ['bridge', 'br;0'], ['bridge', 'x'.repeat(16)],
      ['stateDir', 'relative'], ['logLevel', 'trace'], ['subnet', '10.244.0.0/33'], ['subnet', 'ten.0.0.0/8'], ['subnet', 7],
      ['name', 'a/b'], ['name', ''], ['name', 'x'.repeat(201)], ['mode', 'flannel'], ['mode', 3], ['ipam.type', 'host-local'],
      ['ipam.block', '10.244.1.0/99'], ['ipam.block', '10.245.0.0/24'], ['ipam.rangeStart', '192.168.0.1'], ['ipam.gateway', '10.244.9.1'],
      ['ipam.blockSize', 8], ['ipam.dataDir', 'rel'], ['ipam', 'file'], ['uplink', 'a b'], ['dns', 'x'], ['prevResult', []],
    ]);
    setIn(c.config, field, value);
    return `${field}=${JSON.stringify(value).slice(0, 24)}`;
  } },
  { name: 'unknown key', verbs: VERBS, apply: (c, r) => {
    const n = r.pick([1, 1, 3, 2000]);
    const where = r.int(2) === 0 ? '' : 'ipam.';
    for (let i = 0; i < n; i++) setIn(c.config, `${where}${r.pick(['bridgeName', 'subnets', 'k', 'Mtu', 'ipMasquerade'])}${i}${r.str(3)}`, i);
    return `${n} unknown key(s) in ${where || 'top level'}`;
  } },
  { name: 'NUL byte in a string', verbs: VERBS, apply: (c, r) => {
    const field = r.pick(['stateDir', 'ipam.dataDir', 'logFile', 'bridge', 'name', 'type', 'ipam.agentSocket']);
    setIn(c.config, field, field.endsWith('Dir') || field === 'logFile' || field.endsWith('Socket') ? `/tmp/x\u0000${r.str(3)}` : `a\u0000b`);
    return `NUL in ${field}`;
  } },
  { name: 'verb not in this cniVersion', verbs: ['CHECK', 'GC', 'STATUS'], apply: (c, r) => {
    c.config.cniVersion = c.base === 'CHECK' ? r.pick(['0.3.0', '0.3.1']) : r.pick(['0.3.1', '0.4.0', '1.0.0']);
    return `${c.verb} with ${c.config.cniVersion}`;
  } },
  { name: 'GC without its list', verbs: ['GC'], apply: (c) => {
    delete c.config['cni.dev/valid-attachments'];
    return 'no valid-attachments';
  } },
  { name: 'CHECK with a bad prevResult', verbs: ['CHECK'], apply: (c, r) => {
    const prev = r.pick<unknown>([undefined, { interfaces: [null], ips: [], routes: [] }, { interfaces: [7], ips: [] }, { ips: 'x' }, { interfaces: [], ips: [null] }]);
    if (prev === undefined) delete c.config.prevResult;
    else c.config.prevResult = prev;
    return `prevResult ${JSON.stringify(prev) ?? 'missing'}`;
  } },
];

function baseCase(verb: Verb, w: World): Case {
  const config: Record<string, unknown> = w.node.config();
  // Were a fault not to stop GC, the resident would still be valid; CHECK has a well-formed
  // prevResult for the caller (who has no attachment: it fails anyway).
  if (verb === 'GC') config['cni.dev/valid-attachments'] = [{ containerID: RESIDENT, ifname: 'eth0' }];
  if (verb === 'CHECK') config.prevResult = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: w.pod }], ips: [], routes: [] };
  return {
    base: verb,
    verb,
    env: { CNI_CONTAINERID: CALLER, CNI_NETNS: w.pod, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' },
    config,
    faults: [],
  };
}

function generate(r: Rng, w: World): Case {
  const verb = r.pick(VERBS);
  const c = baseCase(verb, w);
  const applicable = FAULTS.filter((f) => f.verbs.includes(verb));
  const n = 1 + r.int(3);
  for (let i = 0; i < n; i++) {
    const f = r.pick(applicable);
    if (f.name === 'unknown CNI_COMMAND' && c.verb !== verb) continue; // once is enough
    c.faults.push(f.apply(c, r, w));
  }
  return c;
}

function describe(i: number, c: Case): string {
  return `case ${i} (seed ${SEED}): ${JSON.stringify(c.verb)} ${c.faults.join(' + ')}`;
}

function checkDocument(stdout: string, where: string): number {
  assert.ok(stdout.endsWith('\n'), `${where}: stdout ends with a newline: ${JSON.stringify(stdout.slice(0, 300))}`);
  assert.equal(stdout.trimEnd().split('\n').length, 1, `${where}: exactly one line`);
  assert.ok(stdout.length < 8192, `${where}: a small document (${stdout.length} bytes)`);
  const doc = JSON.parse(stdout) as Record<string, unknown>;
  assert.ok(doc && typeof doc === 'object' && !Array.isArray(doc), where);
  for (const k of Object.keys(doc)) assert.ok(['cniVersion', 'code', 'msg', 'details'].includes(k), `${where}: unexpected key ${k}`);
  assert.equal(typeof doc.cniVersion, 'string', where);
  assert.ok(Number.isInteger(doc.code), `${where}: integer code`);
  assert.notEqual(doc.code, Code.Internal, `${where}: not an internal error: ${stdout}`);
  assert.equal(typeof doc.msg, 'string', where);
  return doc.code as number;
}

test(`generated bad input (${CASES} cases, seed ${SEED}): one error document each, nothing changes`, { skip: rootSkipReason() ?? false, timeout: 300_000 }, async (t) => {
  t.diagnostic(`seed ${SEED}: reproduce with TESTCNI_GEN_SEED=${SEED} npm test -- generated-input`);
  const prefix = uniquePrefix('gi');
  const podName = `${prefix}p`;
  const residentPodName = `${prefix}r`;
  let node: TestNode | null = null;
  t.after(() => {
    delNetns(podName);
    delNetns(residentPodName);
    if (node) node.cleanup();
    else delNetns(`${prefix}n`);
  });
  node = makeNode(prefix);
  const world: World = { node, pod: addNetns(podName), file: join(node.dir, 'a-file'), dir: join(node.dir, 'a-dir') };
  writeFileSync(world.file, 'not a netns\n');
  mkdirSync(world.dir);
  const residentPod = addNetns(residentPodName);
  const added = runPlugin({ command: 'ADD', containerId: RESIDENT, netns: residentPod, nodeNs: node.name, config: node.config() });
  assert.equal(added.code, 0, `resident ADD: ${added.stdout} ${added.stderr}`);
  const snapshot = () => ({
    node: nodeState(node!.name), pod: nodeState(podName), residentPod: nodeState(residentPodName),
    state: treeSnapshot(node!.stateDir), ipam: treeSnapshot(node!.ipamDir),
  });
  // The resident's links settle (carrier, DAD) before the first snapshot.
  let before = snapshot();
  for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = snapshot();
    const settled = JSON.stringify(now) === JSON.stringify(before) && !JSON.stringify(now).includes('tentative');
    before = now;
    if (settled) break;
  }

  const rng = new Rng(prng(SEED));
  const cases = Array.from({ length: CASES }, () => generate(rng, world));
  const codes = new Map<number, number>();
  const verbs = new Map<string, number>();
  let passed = 0;
  for (let i = 0; i < cases.length; i += CONCURRENCY) {
    const batch = cases.slice(i, i + CONCURRENCY);
    const results = await Promise.all(batch.map(async (c, k) => {
      const call: PluginCall = { command: c.verb, nodeNs: node!.name, config: c.stdin ?? c.config, env: c.env };
      const t0 = Date.now();
      const r = await runPluginAsync(call);
      if (process.env.TESTCNI_GEN_TIMES) t.diagnostic(`${Date.now() - t0} ms ${describe(i + k, c)}`);
      return r;
    }));
    results.forEach((r, k) => {
      const where = describe(i + k, batch[k]!);
      assert.equal(r.code, 1, `${where}: exit status 1 (stdout ${r.stdout.slice(0, 300)} stderr ${r.stderr.slice(0, 300)})`);
      const code = checkDocument(r.stdout, where);
      codes.set(code, (codes.get(code) ?? 0) + 1);
      verbs.set(batch[k]!.base, (verbs.get(batch[k]!.base) ?? 0) + 1);
    });
    assert.deepEqual(snapshot(), before, `after ${batch.map((c, k) => describe(i + k, c)).join('; ')}: node, pods, state and IPAM dirs unchanged`);
    passed += batch.length;
  }
  t.diagnostic(`${passed} generated cases passed; verbs ${[...verbs].map(([v, n]) => `${v}:${n}`).join(' ')}; codes ${[...codes].sort((a, b) => a[0] - b[0]).map(([c, n]) => `${c}:${n}`).join(' ')}`);
  for (const v of VERBS) assert.ok((verbs.get(v) ?? 0) > 0, `verb ${v} was generated`);
  assert.equal(passed, CASES);
});
