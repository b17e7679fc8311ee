// The first pod on a fresh node is reachable the moment ADD returns (issue 6 §2): the bridge and
// its first port come up together, and the kernel switches their carrier and queues on
// asynchronously (linkwatch), so ADD must wait for the operational state of what it created.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rootSkipReason, uniquePrefix, inNetns } from '../helpers/netns.ts';
import { Scope, cni, show } from '../helpers/e2e.ts';

const skip = rootSkipReason(['ping']) ?? undefined;
const ROUNDS = 10;

test(`the node pings the first pod of a fresh node once, 1 s deadline, right after ADD (${ROUNDS} fresh nodes in a row)`, { skip, timeout: 120_000 }, async (t) => {
  const failures: string[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const scope = new Scope(t, uniquePrefix(`f${i}`));
    try {
      const node = scope.node();
      const pod = scope.pod('a');
      const r = cni(node, { command: 'ADD', containerId: `${scope.prefix}-a`, netns: pod.path });
      assert.equal(r.code, 0, show(r));
      const ip = (r.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
      const p = inNetns(node.name, ['ping', '-n', '-q', '-c', '1', '-W', '1', ip], { allowFail: true });
      if (p.code !== 0) failures.push(`round ${i + 1}: ${ip} did not answer`);
    } finally {
      scope.close();
    }
  }
  t.diagnostic(`${ROUNDS - failures.length} of ${ROUNDS} first pods answered the first ping`);
  assert.deepEqual(failures, []);
});
