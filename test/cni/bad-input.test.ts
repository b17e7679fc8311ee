// Black-box table of malformed CNI calls against the built plugin, run inside a simulated node
// that already holds one healthy attachment. Every row must be refused with exactly one JSON
// error document, exit status 1, and leave the node, the pods and the state dirs as they were.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeFileSync, readdirSync, readFileSync } from 'node:fs';
import {
  rootSkipReason, uniquePrefix, makeNode, addNetns, delNetns, runPlugin, nodeState, treeSnapshot, inNetns,
  pluginArgv, NETNS_DIR, type TestNode, type PluginCall,
} from '../helpers/netns.ts';
import { Code } from '../../model/errors.ts';
import { SUPPORTED_VERSIONS } from '../../cni/version.ts';

const RESIDENT = 'resident01';
const CALLER = 'cbad01';

interface Ctx {
  node: TestNode;
  /** a pod netns with nothing in it, the target of the bad calls */
  pod: string;
  /** a path where no netns exists */
  gone: string;
  /** a regular file, not a netns */
  notNetns: string;
}

interface Row {
  name: string;
  /** CNI_COMMAND; ADD when omitted */
  verb?: string;
  /** changes to the runtime's environment (undefined removes a variable) */
  env?: Record<string, string | undefined>;
  containerId?: string;
  /** CNI_NETNS; the empty pod when omitted */
  netns?: (c: Ctx) => string;
  /** what goes on stdin (a string is sent as is); the node's valid config when omitted */
  stdin?: (c: Ctx) => unknown;
  code: number;
  /** cniVersion of the error document; 1.1.0 when omitted */
  reply?: string;
  /** msg + details must match (e.g. name the field) */
  mentions?: RegExp;
  /** a further check after the call */
  alsoCheck?: (c: Ctx) => void;
}

function without(obj: Record<string, unknown>, ...keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([k]) => !keys.includes(k)));
}

const cfg = (extra: Record<string, unknown> = {}) => (c: Ctx) => c.node.config(extra);
const ipam = (extra: Record<string, unknown>) => cfg({ ipam: extra });

const ROWS: Row[] = [
  // --- environment: code 4 -------------------------------------------------------------
  ...(['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'] as const).map((v): Row => ({
    name: `ADD without ${v}`, env: { [v]: undefined }, code: Code.InvalidEnv, mentions: new RegExp(v),
  })),
  ...(['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'] as const).map((v): Row => ({
    name: `DEL without ${v}`, verb: 'DEL', env: { [v]: undefined }, code: Code.InvalidEnv, mentions: new RegExp(v),
  })),
  ...(['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'] as const).map((v): Row => ({
    name: `CHECK without ${v}`, verb: 'CHECK', env: { [v]: undefined }, code: Code.InvalidEnv, mentions: new RegExp(v),
  })),
  { name: 'GC without CNI_PATH', verb: 'GC', env: { CNI_PATH: undefined }, code: Code.InvalidEnv, mentions: /CNI_PATH/ },
  { name: 'STATUS without CNI_PATH', verb: 'STATUS', env: { CNI_PATH: undefined }, code: Code.InvalidEnv, mentions: /CNI_PATH/ },
  { name: 'ADD with an empty CNI_CONTAINERID', env: { CNI_CONTAINERID: '' }, code: Code.InvalidEnv, mentions: /CNI_CONTAINERID/ },
  { name: 'lower-case CNI_COMMAND', verb: 'add', code: Code.InvalidEnv, mentions: /CNI_COMMAND/ },
  { name: 'unknown CNI_COMMAND', verb: 'UPDATE', code: Code.InvalidEnv, mentions: /CNI_COMMAND/ },
  { name: 'container id starting with "-"', containerId: '-rf', code: Code.InvalidEnv, mentions: /CNI_CONTAINERID/ },
  { name: 'container id with "/"', containerId: 'a/../../b', code: Code.InvalidEnv, mentions: /CNI_CONTAINERID/ },
  { name: 'DEL with a container id with a space', verb: 'DEL', containerId: 'a b', code: Code.InvalidEnv, mentions: /CNI_CONTAINERID/ },
  { name: 'ifname with "/"', env: { CNI_IFNAME: 'eth/0' }, code: Code.InvalidEnv, mentions: /CNI_IFNAME/ },
  { name: 'ifname with ";"', env: { CNI_IFNAME: 'eth0;reboot' }, code: Code.InvalidEnv, mentions: /CNI_IFNAME/ },
  { name: 'ifname of 16 bytes', env: { CNI_IFNAME: 'abcdefghijklmnop' }, code: Code.InvalidEnv, mentions: /CNI_IFNAME/ },
  { name: 'ifname ".."', env: { CNI_IFNAME: '..' }, code: Code.InvalidEnv, mentions: /CNI_IFNAME/ },
  { name: 'DEL with ifname with ":"', verb: 'DEL', env: { CNI_IFNAME: 'eth0:1' }, code: Code.InvalidEnv, mentions: /CNI_IFNAME/ },
  { name: 'ADD with a relative CNI_NETNS', netns: () => 'var/run/netns/x', code: Code.InvalidEnv, mentions: /CNI_NETNS/ },
  { name: 'DEL with a relative CNI_NETNS', verb: 'DEL', containerId: RESIDENT, netns: () => 'x', code: Code.InvalidEnv, mentions: /CNI_NETNS/ },
  { name: 'malformed CNI_ARGS', env: { CNI_ARGS: 'K8S_POD_NAME' }, code: Code.InvalidEnv, mentions: /CNI_ARGS/ },
  { name: 'ADD into a netns that does not exist', netns: (c) => c.gone, code: Code.InvalidEnv, mentions: /CNI_NETNS|netns/ },
  { name: 'ADD into a path that is not a netns', netns: (c) => c.notNetns, code: Code.InvalidEnv, mentions: /CNI_NETNS|netns/ },

  // --- stdin that is not a config object: code 6 ---------------------------------------
  { name: 'non-JSON stdin', stdin: () => 'cniVersion=1.1.0', code: Code.DecodeFailure },
  { name: 'empty stdin', stdin: () => '', code: Code.DecodeFailure },
  { name: 'truncated JSON', stdin: (c) => JSON.stringify(c.node.config()).slice(0, 40), code: Code.DecodeFailure },
  { name: 'JSON array', stdin: (c) => [c.node.config()], code: Code.DecodeFailure },
  { name: 'JSON null', stdin: () => 'null', code: Code.DecodeFailure },
  { name: 'DEL with a JSON string', verb: 'DEL', containerId: RESIDENT, stdin: () => '"testcni"', code: Code.DecodeFailure },

  // --- versions: code 1 ------------------------------------------------------------------
  { name: 'unsupported cniVersion 0.2.0', stdin: cfg({ cniVersion: '0.2.0' }), code: Code.IncompatibleVersion, mentions: /0\.2\.0/ },
  { name: 'unsupported cniVersion 1.2.0', stdin: cfg({ cniVersion: '1.2.0' }), code: Code.IncompatibleVersion, mentions: /1\.2\.0/ },
  { name: 'cniVersion as a number', stdin: cfg({ cniVersion: 1.1 }), code: Code.IncompatibleVersion },
  { name: 'DEL of the resident with cniVersion 0.1.0', verb: 'DEL', containerId: RESIDENT, stdin: cfg({ cniVersion: '0.1.0' }), code: Code.IncompatibleVersion },
  { name: 'CHECK with a 0.3.1 config', verb: 'CHECK', containerId: RESIDENT, stdin: cfg({ cniVersion: '0.3.1' }), code: Code.IncompatibleVersion, reply: '0.3.1', mentions: /CHECK/ },
  { name: 'GC with a 1.0.0 config', verb: 'GC', stdin: cfg({ cniVersion: '1.0.0', 'cni.dev/valid-attachments': [] }), code: Code.IncompatibleVersion, reply: '1.0.0', mentions: /GC/ },
  { name: 'STATUS with a 1.0.0 config', verb: 'STATUS', stdin: cfg({ cniVersion: '1.0.0' }), code: Code.IncompatibleVersion, reply: '1.0.0', mentions: /STATUS/ },

  // --- invalid config: code 7 --------------------------------------------------------------
  { name: 'missing cniVersion', stdin: (c) => without(c.node.config(), 'cniVersion'), code: Code.InvalidConfig, mentions: /cniVersion/ },
  { name: 'missing name', stdin: (c) => without(c.node.config(), 'name'), code: Code.InvalidConfig, mentions: /name/ },
  { name: 'missing type', stdin: (c) => without(c.node.config(), 'type'), code: Code.InvalidConfig, mentions: /type/ },
  { name: 'missing subnet', stdin: (c) => without(c.node.config(), 'subnet'), code: Code.InvalidConfig, mentions: /subnet/ },
  { name: 'name with invalid characters', stdin: cfg({ name: 'my net/1' }), code: Code.InvalidConfig, mentions: /name/ },
  { name: 'mtu as a string', stdin: cfg({ mtu: '1500' }), code: Code.InvalidConfig, mentions: /mtu/ },
  { name: 'ipMasq as a string', stdin: cfg({ ipMasq: 'true' }), code: Code.InvalidConfig, mentions: /ipMasq/ },
  { name: 'unknown mode', stdin: cfg({ mode: 'flannel' }), code: Code.InvalidConfig, mentions: /mode/ },
  { name: 'subnet with prefix /33', stdin: cfg({ subnet: '10.244.0.0/33' }), code: Code.InvalidConfig, mentions: /subnet/ },
  { name: 'subnet not an address', stdin: cfg({ subnet: 'ten.two.0.0/16' }), code: Code.InvalidConfig, mentions: /subnet/ },
  { name: 'bare subnet in host-gw mode', stdin: cfg({ subnet: '10.244.0.0' }), code: Code.InvalidConfig, mentions: /subnet/ },
  { name: 'ipam.block not a CIDR', stdin: ipam({ block: '10.244.1.0/99' }), code: Code.InvalidConfig, mentions: /ipam\.block/ },
  { name: 'ipam.block outside the subnet', stdin: ipam({ block: '10.245.1.0/24' }), code: Code.InvalidConfig, mentions: /ipam\.block/ },
  { name: 'rangeStart outside the subnet', stdin: ipam({ rangeStart: '192.168.1.10' }), code: Code.InvalidConfig, mentions: /ipam\.rangeStart/ },
  { name: 'rangeEnd before rangeStart', stdin: ipam({ rangeStart: '10.244.0.50', rangeEnd: '10.244.0.20' }), code: Code.InvalidConfig, mentions: /ipam\.rangeStart/ },
  { name: 'rangeEnd is the broadcast address', stdin: ipam({ rangeEnd: '10.244.0.255' }), code: Code.InvalidConfig, mentions: /ipam\.rangeEnd/ },
  { name: 'gateway outside the block', stdin: ipam({ gateway: '10.244.5.1' }), code: Code.InvalidConfig, mentions: /ipam\.gateway/ },
  { name: 'ipam.type host-local', stdin: ipam({ type: 'host-local' }), code: Code.InvalidConfig, mentions: /ipam\.type/ },
  { name: 'relative stateDir', stdin: cfg({ stateDir: 'state' }), code: Code.InvalidConfig, mentions: /stateDir/ },
  { name: 'bridge name with ";"', stdin: cfg({ bridge: 'br0;x' }), code: Code.InvalidConfig, mentions: /bridge/ },
  { name: 'bridge name "."', stdin: cfg({ bridge: '.' }), code: Code.InvalidConfig, mentions: /bridge/ },
  { name: 'DEL of the resident with mtu as a string', verb: 'DEL', containerId: RESIDENT, stdin: cfg({ mtu: 'x' }), code: Code.InvalidConfig, mentions: /mtu/ },
  { name: 'GC without a valid-attachments list', verb: 'GC', stdin: cfg(), code: Code.InvalidConfig, mentions: /valid-attachments/ },
  { name: 'CHECK of the resident without prevResult', verb: 'CHECK', containerId: RESIDENT, stdin: cfg(), code: Code.InvalidConfig, mentions: /prevResult/ },

  // --- unknown keys: code 2 ----------------------------------------------------------------
  { name: 'unknown key in ipam', stdin: ipam({ subnet: '10.244.0.0/24' }), code: Code.UnsupportedField, mentions: /ipam\.subnet/ },
  { name: 'unknown top-level key', stdin: cfg({ bridgeName: 'br0' }), code: Code.UnsupportedField, mentions: /bridgeName/ },
  { name: 'a key of no mode', stdin: cfg({ vni: 13190 }), code: Code.UnsupportedField, mentions: /vni/ },

  // --- well-formed but refused before any change ---------------------------------------------
  {
    name: 'ADD in a mode this build does not have', stdin: cfg({ mode: 'flannel' }), code: Code.InvalidConfig, mentions: /mode/,
    alsoCheck: (c) => {
      // no address was reserved for the refused ADD: only the resident's lease and the cursor
      const files = readdirSync(join(c.node.ipamDir, String(c.node.config().name))).sort();
      assert.deepEqual(files, ['10.244.0.2', 'last_reserved_ip.0']);
      assert.equal(readFileSync(join(c.node.ipamDir, String(c.node.config().name), '10.244.0.2'), 'utf8'), `${RESIDENT}\r\neth0`);
    },
  },
  { name: 'ADD with cluster IPAM and no node agent', stdin: ipam({ type: 'cluster', agentSocket: '/nonexistent/agent.sock' }), code: Code.TryAgainLater, mentions: /agent/ },
  { name: 'ADD with cluster IPAM on another network, no agent', stdin: cfg({ name: 'othernet', ipam: { type: 'cluster', agentSocket: '/nonexistent/agent.sock' } }), code: Code.TryAgainLater, mentions: /agent/ },
  { name: 'ADD of the resident again', containerId: RESIDENT, code: Code.AlreadyAttached },
  {
    name: 'CHECK of an unknown container', verb: 'CHECK',
    stdin: cfg({ prevResult: { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/x' }], ips: [], routes: [], dns: {} } }),
    code: Code.UnknownContainer,
  },
];

/** A namespace's state after an ADD still moves on its own for a while: the kernel reports
 *  carrier changes up to a second late (linkwatch) and IPv6 DAD takes about as long. */
async function settledState(ns: string): Promise<Record<string, unknown>> {
  let prev = '';
  let sameSince = Date.now();
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const now = JSON.stringify(nodeState(ns));
    if (now !== prev || now.includes('tentative')) {
      prev = now;
      sameSince = Date.now();
    } else if (Date.now() - sameSince >= 2_000) {
      return JSON.parse(now);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`netns ${ns} did not settle`);
}

function assertOneErrorDocument(stdout: string, code: number, reply: string, mentions?: RegExp): void {
  assert.ok(stdout.endsWith('\n'), `stdout must end with a newline: ${JSON.stringify(stdout)}`);
  assert.equal(stdout.trimEnd().split('\n').length, 1, `exactly one line on stdout: ${JSON.stringify(stdout)}`);
  const doc = JSON.parse(stdout) as Record<string, unknown>;
  assert.ok(doc && typeof doc === 'object' && !Array.isArray(doc), stdout);
  for (const k of Object.keys(doc)) assert.ok(['cniVersion', 'code', 'msg', 'details'].includes(k), `unexpected key ${k} in ${stdout}`);
  assert.equal(doc.code, code, `code in ${stdout}`);
  assert.equal(doc.cniVersion, reply, `cniVersion in ${stdout}`);
  assert.equal(typeof doc.msg, 'string');
  assert.ok((doc.msg as string).length > 0, 'msg must not be empty');
  if ('details' in doc) assert.equal(typeof doc.details, 'string');
  if (mentions) assert.match(`${doc.msg} ${doc.details ?? ''}`, mentions);
}

test('bad CNI input is refused with one error document and no change', { skip: rootSkipReason() ?? false }, async (t) => {
  const prefix = uniquePrefix('bi');
  const podName = `${prefix}p`;
  const residentPodName = `${prefix}r`;
  let node: TestNode | null = null;
  // Registered before anything exists, so a failure half-way through setup still cleans up.
  t.after(() => {
    delNetns(podName);
    delNetns(residentPodName);
    if (node) node.cleanup();
    else delNetns(`${prefix}n`); // makeNode may have failed after creating its netns
  });
  node = makeNode(prefix);
  const ctx: Ctx = {
    node,
    pod: addNetns(podName),
    gone: join(NETNS_DIR, `${prefix}gone`),
    notNetns: join(node.dir, 'not-a-netns'),
  };
  writeFileSync(ctx.notNetns, 'just a file\n');
  const residentPod = addNetns(residentPodName);

  // One healthy attachment, so that "unchanged" covers existing journal, lease and links.
  const added = runPlugin({ command: 'ADD', containerId: RESIDENT, netns: residentPod, nodeNs: node.name, config: node.config() });
  assert.equal(added.code, 0, `resident ADD failed: ${added.stdout} ${added.stderr}`);
  const [nodeBefore, podBefore, residentPodBefore] = await Promise.all([node.name, podName, residentPodName].map(settledState));
  const before = {
    node: nodeBefore,
    pod: podBefore,
    residentPod: residentPodBefore,
    state: treeSnapshot(node.stateDir),
    ipam: treeSnapshot(node.ipamDir),
  };
  assert.ok(Object.keys(before.ipam).some((f) => f.endsWith('/10.244.0.2')), 'the resident holds a lease');
  assert.ok(Object.keys(before.state).some((f) => f.endsWith(`${RESIDENT}@eth0.jsonl`)), 'the resident has a journal');

  const snapshot = () => ({
    node: nodeState(node!.name),
    pod: nodeState(podName),
    residentPod: nodeState(residentPodName),
    state: treeSnapshot(node!.stateDir),
    ipam: treeSnapshot(node!.ipamDir),
  });
  // Each row is compared with the state just before it (the previous row's after), so a row
  // that leaks fails alone instead of failing every row after it.
  let current = before;
  for (const row of ROWS) {
    await t.test(`${row.name} -> code ${row.code}`, () => {
      const call: PluginCall = {
        command: row.verb ?? 'ADD',
        containerId: row.containerId ?? CALLER,
        netns: row.netns ? row.netns(ctx) : ctx.pod,
        config: row.stdin ? row.stdin(ctx) : node!.config(),
        nodeNs: node!.name,
        env: row.env,
      };
      const r = runPlugin(call);
      const prior = current;
      const after = snapshot();
      current = after;
      assert.equal(r.code, 1, `exit status (stdout: ${r.stdout} stderr: ${r.stderr})`);
      assertOneErrorDocument(r.stdout, row.code, row.reply ?? '1.1.0', row.mentions);
      assert.deepEqual(after.state, prior.state, 'state dir changed');
      assert.deepEqual(after.ipam, prior.ipam, 'IPAM dir changed');
      assert.deepEqual(after.node, prior.node, 'node netns changed (links, addresses, routes, neighbours or iptables)');
      assert.deepEqual(after.pod, prior.pod, 'pod netns changed');
      assert.deepEqual(after.residentPod, prior.residentPod, 'resident pod netns changed');
      row.alsoCheck?.(ctx);
    });
  }

  await t.test('the table has at least 40 rows, each with a distinct name', () => {
    assert.ok(ROWS.length >= 40, `${ROWS.length} rows`);
    assert.equal(new Set(ROWS.map((r) => r.name)).size, ROWS.length);
  });

  await t.test('VERSION prints the supported versions and exits 0, whatever stdin holds', () => {
    for (const stdin of [node!.config(), 'not json', '']) {
      const r = runPlugin({ command: 'VERSION', nodeNs: node!.name, config: stdin, env: { CNI_CONTAINERID: undefined, CNI_IFNAME: undefined, CNI_PATH: undefined } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, JSON.stringify({ cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] }) + '\n');
    }
  });

  await t.test('no CNI_COMMAND and no arguments: an about line on stderr, nothing on stdout, exit 0', () => {
    const argv = pluginArgv(node!.name);
    const r = spawnSync(argv[0]!, argv.slice(1), { input: '', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^testcni: .*CNI/);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1);
  });

  await t.test('after the whole table the node is as it was before it', () => {
    assert.deepEqual(snapshot(), before);
    const eth0 = inNetns(residentPodName, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']).stdout;
    assert.match(eth0, /"local":"10\.244\.0\.2"/);
  });
});
