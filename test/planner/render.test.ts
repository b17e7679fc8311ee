import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shellQuote, renderNodeScript } from '../../planner/render.ts';
import type { Step } from '../../model/plan.ts';
import { birdDaemon } from '../../planner/bird/daemon.ts';

test('shellQuote leaves safe words alone and single-quotes the rest', () => {
  assert.equal(shellQuote('/usr/sbin/ip'), '/usr/sbin/ip');
  assert.equal(shellQuote('10.244.0.0/16'), '10.244.0.0/16');
  assert.equal(shellQuote('!'), "'!'");
  assert.equal(shellQuote("it's"), "'it'\\''s'");
  assert.equal(shellQuote('a b;rm -rf /'), "'a b;rm -rf /'");
  assert.equal(shellQuote('$(x)'), "'$(x)'");
});

test('a node plan as a script: its steps (shared objects tolerated), then each daemon configured, checked, started, awaited', () => {
  const facts = { tools: { ip: '/usr/sbin/ip', nsenter: '/usr/bin/nsenter', sysctl: '/usr/sbin/sysctl' }, hostPid: 4242 };
  const step: Step = {
    id: 'link.ipip:host:tunl0', kind: 'link.add', scope: 'node', ns: 'host', mech: 'ip', argv: ['/usr/sbin/ip', 'link', 'add', 'name', 'tunl0', 'type', 'ipip'],
    idempotent: false, undo: null, undoReason: 'x', probe: null, describe: 'create the IPIP tunnel tunl0',
  };
  const spec = birdDaemon({ config: '/var/lib/x/bird/bird.conf', socket: '/run/x/bird.ctl', pidFile: '/run/x/bird.pid', logFile: '/var/lib/x/bird/bird.log' }, { bird: '/usr/sbin/bird', birdc: '/usr/sbin/birdc' }, null);
  const sh = renderNodeScript('node plan of n1', [step], facts, [{ spec, text: 'router id 198.18.0.11;\n' }]);
  assert.equal(sh, [
    '#!/bin/sh', '# node plan of n1', '# Plan: 1 step, 1 daemon.', 'set -eu',
    '# create the IPIP tunnel tunl0',
    "/usr/sbin/ip link add name tunl0 type ipip 2>/dev/null || echo 'already in place: link.ipip:host:tunl0'",
    '# daemon bird: its configuration (checked before use), then the program in the background',
    'mkdir -p /var/lib/x/bird /run/x',
    "cat > /var/lib/x/bird/bird.conf <<'TESTCNI_EOF'", 'router id 198.18.0.11;', 'TESTCNI_EOF', 'chmod 0644 /var/lib/x/bird/bird.conf',
    '/usr/sbin/bird -p -c /var/lib/x/bird/bird.conf',
    '/usr/sbin/bird -f -c /var/lib/x/bird/bird.conf -s /run/x/bird.ctl -P /run/x/bird.pid >>/var/lib/x/bird/bird.log 2>&1 </dev/null &',
    'i=0; until /usr/sbin/birdc -s /run/x/bird.ctl show status >/dev/null 2>&1; do i=$((i+1)); [ "$i" -lt 100 ] || { echo \'bird does not answer\' >&2; exit 1; }; sleep 0.1; done',
    '',
  ].join('\n'));
});
