import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEnv, commandOf, ifNameProblem, VERBS, type Verb } from '../../cni/env.ts';
import { CniError, Code } from '../../model/errors.ts';

// A complete, valid environment for every verb; each test removes or breaks one variable.
const FULL = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c0ffee-1',
  CNI_NETNS: '/var/run/netns/cni-1234',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/libexec/cni',
};

function envFor(verb: Verb, change: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: Record<string, string | undefined> = { ...FULL, CNI_COMMAND: verb, ...change };
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined));
}

/** Asserts parseEnv refuses env with code 4 and a details text matching `mentions`. */
function assertInvalid(env: NodeJS.ProcessEnv, mentions: RegExp): void {
  assert.throws(
    () => parseEnv(env),
    (e: unknown) => {
      assert.ok(e instanceof CniError, `expected a CniError, got ${String(e)}`);
      assert.equal(e.code, Code.InvalidEnv);
      assert.match(e.details, mentions);
      return true;
    },
  );
}

// The table of cni-protocol.md: required variables per verb.
const REQUIRED: Record<Verb, string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: ['CNI_PATH'],
  VERSION: [],
};
const ALL_VARS = ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'];

test('the verb list is the six verbs of CNI 1.1', () => {
  assert.deepEqual([...VERBS].sort(), ['ADD', 'CHECK', 'DEL', 'GC', 'STATUS', 'VERSION']);
});

for (const verb of VERBS) {
  test(`${verb}: a full environment parses`, () => {
    const env = parseEnv(envFor(verb));
    assert.equal(env.command, verb);
  });

  for (const name of REQUIRED[verb]) {
    for (const [how, value] of [['unset', undefined], ['empty', '']] as const) {
      test(`${verb}: ${name} ${how} is code 4 naming it`, () => {
        assertInvalid(envFor(verb, { [name]: value }), new RegExp(`${name} is required for ${verb}`));
      });
    }
  }

  const notRequired = ALL_VARS.filter((n) => !REQUIRED[verb].includes(n));
  if (notRequired.length > 0) {
    test(`${verb}: ${notRequired.join(', ')} may be absent`, () => {
      const change = Object.fromEntries(notRequired.map((n) => [n, undefined]));
      assert.equal(parseEnv(envFor(verb, change)).command, verb);
    });
  }
}

test('every missing variable is named at once', () => {
  assertInvalid({ CNI_COMMAND: 'ADD' }, /CNI_CONTAINERID.*CNI_NETNS.*CNI_IFNAME.*CNI_PATH/);
});

test('DEL accepts an empty CNI_NETNS (containerd\'s second DEL)', () => {
  const env = parseEnv(envFor('DEL', { CNI_NETNS: '' }));
  assert.equal(env.netns, '');
  assert.equal(env.containerId, FULL.CNI_CONTAINERID);
});

test('CNI_COMMAND: unknown or lower-case verbs are code 4; unset or empty is "not a CNI call"', () => {
  for (const c of ['add', 'UPDATE', 'ADD ', 'VERSION;']) assertInvalid(envFor('ADD', { CNI_COMMAND: c }), /CNI_COMMAND/);
  assertInvalid({ ...FULL, CNI_COMMAND: undefined } as NodeJS.ProcessEnv, /CNI_COMMAND/);
  assert.equal(commandOf({}), null);
  assert.equal(commandOf({ CNI_COMMAND: '' }), null);
  assert.equal(commandOf({ CNI_COMMAND: 'DEL' }), 'DEL');
  assert.equal(commandOf({ CNI_COMMAND: 'bogus' }), 'bogus');
});

test('CNI_CONTAINERID must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$', () => {
  for (const ok of ['a', '0', 'abc123', 'A.b_c-d', 'f'.repeat(64), '9-._']) {
    assert.equal(parseEnv(envFor('ADD', { CNI_CONTAINERID: ok })).containerId, ok);
  }
  for (const bad of ['-abc', '.abc', '_abc', 'a/b', 'a b', 'a@b', 'a;b', 'a:b', 'ä', '../x']) {
    assertInvalid(envFor('ADD', { CNI_CONTAINERID: bad }), /CNI_CONTAINERID must match/);
  }
});

test('GC, STATUS and VERSION ignore the per-container variables', () => {
  for (const verb of ['GC', 'STATUS', 'VERSION'] as const) {
    const env = parseEnv(envFor(verb, { CNI_CONTAINERID: '-bad', CNI_IFNAME: 'a/b', CNI_NETNS: 'relative', CNI_ARGS: 'junk' }));
    assert.equal(env.command, verb);
  }
});

test('CNI_IFNAME: the kernel\'s rules plus the characters ip -batch treats specially', () => {
  for (const ok of ['eth0', 'net1', 'a', 'x'.repeat(15), 'é'.repeat(7), 'eth0.100', 'if-_@x']) {
    assert.equal(ifNameProblem(ok), null, ok);
    assert.equal(parseEnv(envFor('ADD', { CNI_IFNAME: ok })).ifName, ok);
  }
  const bad: [string, RegExp][] = [
    ['x'.repeat(16), /longer than 15 bytes/],
    ['é'.repeat(8), /longer than 15 bytes/], // 8 characters, 16 bytes
    ['.', /"\." or "\.\."/],
    ['..', /"\." or "\.\."/],
    ['a/b', /"\/"/],
    ['a:b', /":"/],
    ['a b', /white space/],
    ['a\tb', /white space/],
    ['a"b', /quotes/],
    ["a'b", /quotes/],
    ['a;b', /";"/],
    ['a#b', /"#"/],
    ['a\\b', /"\\"/],
  ];
  for (const [name, why] of bad) {
    assert.match(ifNameProblem(name) ?? 'accepted', why, JSON.stringify(name));
    for (const verb of ['ADD', 'DEL', 'CHECK'] as const) assertInvalid(envFor(verb, { CNI_IFNAME: name }), /CNI_IFNAME/);
  }
});

test('CNI_NETNS must be an absolute path when given', () => {
  for (const verb of ['ADD', 'DEL', 'CHECK'] as const) {
    for (const bad of ['var/run/netns/x', 'cni-1234', './x']) {
      assertInvalid(envFor(verb, { CNI_NETNS: bad }), /CNI_NETNS must be an absolute path/);
    }
  }
  assert.equal(parseEnv(envFor('ADD', { CNI_NETNS: '/proc/123/ns/net' })).netns, '/proc/123/ns/net');
});

test('CNI_ARGS: KEY=VALUE pairs, unknown keys such as K8S_POD_NAME kept', () => {
  const raw = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=';
  assert.deepEqual(parseEnv(envFor('ADD', { CNI_ARGS: raw })).args, {
    IgnoreUnknown: '1',
    K8S_POD_NAMESPACE: 'default',
    K8S_POD_NAME: 'web-0',
    K8S_POD_INFRA_CONTAINER_ID: 'abc',
    K8S_POD_UID: '',
  });
  assert.deepEqual(parseEnv(envFor('DEL', { CNI_ARGS: 'A=b=c;' })).args, { A: 'b=c' });
  assert.deepEqual(parseEnv(envFor('CHECK', { CNI_ARGS: undefined })).args, {});
  assert.deepEqual(parseEnv(envFor('ADD', { CNI_ARGS: '' })).args, {});
  for (const bad of ['novalue', 'A=1;junk', '=x']) {
    assertInvalid(envFor('ADD', { CNI_ARGS: bad }), /CNI_ARGS entry .* is not KEY=VALUE/);
  }
});

test('CNI_PATH is split on ":" dropping empty entries', () => {
  assert.deepEqual(parseEnv(envFor('ADD', { CNI_PATH: '/opt/cni/bin::/usr/lib/cni:' })).path, ['/opt/cni/bin', '/usr/lib/cni']);
});

test('a parsed ADD environment carries every value through', () => {
  assert.deepEqual(parseEnv(envFor('ADD', { CNI_ARGS: 'K8S_POD_NAME=p' })), {
    command: 'ADD',
    containerId: FULL.CNI_CONTAINERID,
    netns: FULL.CNI_NETNS,
    ifName: 'eth0',
    path: ['/opt/cni/bin', '/usr/libexec/cni'],
    args: { K8S_POD_NAME: 'p' },
  });
});
