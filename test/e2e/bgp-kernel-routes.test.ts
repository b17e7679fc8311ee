// What BIRD really installs for each ipipMode. This kernel has no ipip device, so each node gets
// a veth named like the tunnel (tunl0): the route BIRD's kernel filter builds — `via <node's
// underlay address> dev tunl0 onlink`, or plainly routed — is the same whatever device carries
// the name. Two underlay subnets joined by a router namespace, so crossSubnet has both kinds of
// peer, and sessions beyond the subnet are multihop with next hops resolved through the kernel.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inNetns, uniquePrefix } from '../helpers/netns.ts';
import { BgpLab, bgpSkipReason, waitFor, type SimNode } from '../helpers/bgp.ts';
import type { IpipMode } from '../../planner/bird/view.ts';

const skip = bgpSkipReason();
/** BIRD scans the kernel table every second: long enough waits below cover several scans. */
const FAST_SCAN = { scanTime: 1 };

describe('kernel routes BIRD installs per ipipMode (2 underlay subnets, a router)', { skip, timeout: 90_000 }, () => {
  let lab: BgpLab;
  let n: SimNode[] = [];
  const show = (node: SimNode) => lab.routes(node).map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}${(r.flags ?? []).includes('onlink') ? ' onlink' : ''}`).sort();

  async function expectRoutes(mode: IpipMode, want: Record<string, string[]>): Promise<void> {
    const reg = n.map((x) => ({ name: x.name, underlayIp: x.underlayIp, blocks: x.blocks }));
    for (const node of n) await lab.configure(node, reg, { ipipMode: mode, kernel: FAST_SCAN });
    await waitFor(
      () => n.every((node) => JSON.stringify(show(node)) === JSON.stringify(want[node.name])),
      20_000,
      () => n.map((node) => `${node.name}: ${JSON.stringify(show(node))}`).join('; '),
    );
  }

  before(async () => {
    lab = new BgpLab(uniquePrefix('bk'));
    const router = lab.wire('r', '198.18.0.1', 24);
    inNetns(router.netns, ['ip', 'addr', 'add', '198.19.0.1/24', 'dev', 'eth0']);
    inNetns(router.netns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    n = [
      lab.addNode(1, { ip: '198.18.0.11', subnet: '198.18.0.0/24', gateway: '198.18.0.1' }),
      lab.addNode(2, { ip: '198.18.0.12', subnet: '198.18.0.0/24', gateway: '198.18.0.1' }),
      lab.addNode(3, { ip: '198.19.0.13', subnet: '198.19.0.0/24', gateway: '198.19.0.1' }),
    ];
    for (const node of n) {
      inNetns(node.netns, ['ip', 'link', 'add', 'tunl0', 'type', 'veth', 'peer', 'name', 'tunl0p']);
      for (const dev of ['tunl0', 'tunl0p']) inNetns(node.netns, ['ip', 'link', 'set', dev, 'up']);
    }
    const reg = n.map((x) => ({ name: x.name, underlayIp: x.underlayIp, blocks: x.blocks }));
    for (const node of n) {
      await lab.configure(node, reg, { ipipMode: 'never', kernel: FAST_SCAN });
      await node.sup.start();
    }
  });
  after(() => lab?.close());

  it('crossSubnet: plain next hop inside the subnet, through the tunnel (onlink) beyond it', async () => {
    await expectRoutes('crossSubnet', {
      n1: ['10.244.2.0/24 via 198.18.0.12 dev eth0', '10.244.3.0/24 via 198.19.0.13 dev tunl0 onlink'],
      n2: ['10.244.1.0/24 via 198.18.0.11 dev eth0', '10.244.3.0/24 via 198.19.0.13 dev tunl0 onlink'],
      n3: ['10.244.1.0/24 via 198.18.0.11 dev tunl0 onlink', '10.244.2.0/24 via 198.18.0.12 dev tunl0 onlink'],
    });
    // Beyond the subnet the sessions are multihop, across the router.
    const s = (await n[2]!.sup.birdc.bgpSessions()).map((x) => [x.peer, x.state]);
    assert.deepEqual(s, [['198.18.0.11', 'Established'], ['198.18.0.12', 'Established']]);
  });

  it('always: every block through the tunnel, onlink via the announcing node\'s underlay address', async () => {
    await expectRoutes('always', {
      n1: ['10.244.2.0/24 via 198.18.0.12 dev tunl0 onlink', '10.244.3.0/24 via 198.19.0.13 dev tunl0 onlink'],
      n2: ['10.244.1.0/24 via 198.18.0.11 dev tunl0 onlink', '10.244.3.0/24 via 198.19.0.13 dev tunl0 onlink'],
      n3: ['10.244.1.0/24 via 198.18.0.11 dev tunl0 onlink', '10.244.2.0/24 via 198.18.0.12 dev tunl0 onlink'],
    });
  });

  it('a tunnel device that appears late: routes through it once the supervisor refreshes the kernel', async () => {
    const node = n[0]!;
    inNetns(node.netns, ['ip', 'link', 'del', 'tunl0']); // the kernel drops the routes through it
    await node.sup.refreshKernelRoutes(); // BIRD exports again: its filter fails, nothing is installed
    await waitFor(() => readFileSync(join(node.dir, 'bird.log'), 'utf8').includes('Invalid iface name'), 10_000, () => 'no filter error in bird.log');
    inNetns(node.netns, ['ip', 'link', 'add', 'tunl0', 'type', 'veth', 'peer', 'name', 'tunl0p']);
    for (const dev of ['tunl0', 'tunl0p']) inNetns(node.netns, ['ip', 'link', 'set', dev, 'up']);
    // BIRD does not try a route its filter refused again, not even after several kernel scans.
    await new Promise((r) => setTimeout(r, 2500));
    assert.deepEqual(show(node), []);
    await node.sup.refreshKernelRoutes();
    await waitFor(() => show(node).length === 2, 10_000, () => `after the refresh: ${JSON.stringify(show(node))}`);
    assert.deepEqual(show(node), ['10.244.2.0/24 via 198.18.0.12 dev tunl0 onlink', '10.244.3.0/24 via 198.19.0.13 dev tunl0 onlink']);
  });

  it('never: plainly routed; beyond the subnet via the router that resolves the next hop', async () => {
    await expectRoutes('never', {
      n1: ['10.244.2.0/24 via 198.18.0.12 dev eth0', '10.244.3.0/24 via 198.18.0.1 dev eth0'],
      n2: ['10.244.1.0/24 via 198.18.0.11 dev eth0', '10.244.3.0/24 via 198.18.0.1 dev eth0'],
      n3: ['10.244.1.0/24 via 198.19.0.1 dev eth0', '10.244.2.0/24 via 198.19.0.1 dev eth0'],
    });
    // Each change of mode was one reload per node, none a session reset.
    for (const node of n) {
      assert.equal(node.sup.reloads, 3);
      for (const s of await node.sup.birdc.bgpSessions()) assert.equal(s.state, 'Established');
    }
  });
});
