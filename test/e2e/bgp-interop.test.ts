// Interop with an independent BGP implementation: gobgpd (Debian) as an external peer of a
// BIRD node, over a TCP MD5 password. gobgpd must receive this node's block and nothing else,
// and nothing gobgpd announces may reach the node (external peers import nothing).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, readFileSync } from 'node:fs';
import { uniquePrefix } from '../helpers/netns.ts';
import { BgpLab, bgpSkipReason, waitFor, sleep, type SimNode } from '../helpers/bgp.ts';

const skip = bgpSkipReason(['gobgpd', 'gobgp']);
const GOBGP_IP = '198.18.0.30';
const GOBGP_AS = 65001;
const PASSWORD = 'interop-S3cret&=x';

type RibEntry = { nlri: { prefix: string }; attrs: { type: number; nexthop?: string; as_paths?: { asns: number[] }[] }[] };

describe('interop: gobgpd as an external peer of a BIRD node', { skip, timeout: 60_000 }, () => {
  let lab: BgpLab;
  let n1: SimNode;
  let n2: SimNode;
  let gobgp: { netns: string; pid: number };
  const rib = (): Record<string, RibEntry[]> => {
    const r = lab.gobgp(gobgp.netns, ['global', 'rib', '-a', 'ipv4', '-j']);
    return r.code === 0 && r.stdout.trim() ? JSON.parse(r.stdout) : {};
  };

  before(async () => {
    lab = new BgpLab(uniquePrefix('gi'));
    n1 = lab.addNode(1);
    n2 = lab.addNode(2);
    gobgp = await lab.startGobgp('g', GOBGP_IP, GOBGP_AS, [{ address: n1.underlayIp, asn: 64512, password: PASSWORD }]);
    const reg = [n1, n2].map((n) => ({ name: n.name, underlayIp: n.underlayIp, blocks: n.blocks }));
    await lab.configure(n1, reg, { externalPeers: [{ address: GOBGP_IP, asn: GOBGP_AS, password: PASSWORD }] });
    await lab.configure(n2, reg);
    await n1.sup.start();
    await n2.sup.start();
  });
  after(() => lab?.close());

  it('the session establishes and gobgpd holds this node\'s block, and only it', async () => {
    await waitFor(() => Object.keys(rib()).length > 0, 15_000, () => `gobgpd's RIB stays empty; neighbours: ${lab.gobgp(gobgp.netns, ['neighbor']).stdout}`);
    // n1 also knows n2's block by now: it must not pass it on to an external peer.
    await waitFor(() => lab.routes(n1).some((r) => r.dst === n2.block), 15_000, () => `n1 never learned ${n2.block}`);
    await sleep(300);
    const got = rib();
    assert.deepEqual(Object.keys(got), [n1.block]);
    const attrs = got[n1.block]![0]!.attrs;
    assert.equal(attrs.find((a) => a.type === 3)?.nexthop, n1.underlayIp);
    assert.deepEqual(attrs.find((a) => a.type === 2)?.as_paths?.[0]?.asns, [64512]);
    const s = (await n1.sup.birdc.bgpSessions()).find((x) => x.peer === GOBGP_IP);
    assert.ok(s, 'n1 has a session with gobgpd');
    assert.equal(s.state, 'Established');
    assert.equal(s.name, 'peer_198_18_0_30');
    assert.deepEqual([s.peerAs, s.localAs, s.routes.exported], [GOBGP_AS, 64512, 1]);
  });

  it('what gobgpd announces never reaches the node', async () => {
    const add = lab.gobgp(gobgp.netns, ['global', 'rib', '-a', 'ipv4', 'add', '10.99.0.0/24']);
    assert.equal(add.code, 0, add.stderr);
    // Once gobgpd has sent it (its Adj-RIB-Out towards n1 holds it), BIRD has had it.
    await waitFor(() => lab.gobgp(gobgp.netns, ['neighbor', n1.underlayIp, 'adj-out', '-a', 'ipv4']).stdout.includes('10.99.0.0/24'), 10_000, () => 'gobgpd never sent 10.99.0.0/24');
    await sleep(300);
    const s = (await n1.sup.birdc.bgpSessions()).find((x) => x.peer === GOBGP_IP)!;
    assert.equal(s.routes.imported, 0);
    assert.ok(!lab.routes(n1).some((r) => r.dst === '10.99.0.0/24'));
  });

  it('keeps the password out of logs and the config file private', () => {
    const conf = `${n1.dir}/bird.conf`;
    assert.equal(statSync(conf).mode & 0o777, 0o600);
    assert.ok(readFileSync(conf, 'utf8').includes(`password "${PASSWORD}";`));
    assert.equal(statSync(`${n2.dir}/bird.conf`).mode & 0o777, 0o644, 'no password: readable');
    for (const line of n1.log.lines) assert.ok(!line.includes(PASSWORD), line);
    assert.ok(!readFileSync(`${n1.dir}/bird.log`, 'utf8').includes(PASSWORD));
  });
});
