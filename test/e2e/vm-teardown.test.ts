// Uninstall's node teardown for a mode this kernel cannot carry (ipvlan), on Debian's kernel in
// the emulated VM (test/helpers/vm.ts). A node holds what ipvlan pods leave there (the anchor the
// first ADD on a master makes, with the anchor's own step) beside things testcni must not touch:
// a pod's child, someone's ipvlan child, an anchor someone took over (up, addressed), a device
// merely named like an anchor. Boot 1 runs the teardown's query there; its plan is computed here
// from what the kernel printed; boot 2 builds the same node, runs the query again (the plan from
// it must be the same) and then that plan, rendered, as uninstall would.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/netns.ts';
import { runJobsInVm, vmSkipReason, type VmJobResult } from '../helpers/vm.ts';
import { shellQuote } from '../../planner/render.ts';
import { MODES } from '../../planner/registry.ts';
import { loadConfig } from '../../cni/config.ts';
import { anchorName, anchorStep } from '../../planner/modes/ipvlan/anchor.ts';
import type { NodeTeardownContext } from '../../planner/mode.ts';
import { argvOf, type NodeFacts, type Step } from '../../model/plan.ts';

const skip = vmSkipReason() ?? undefined;
const LAB = readFileSync(join(ROOT, 'test/helpers/vm-lab.sh'), 'utf8');
const FACTS: NodeFacts = { tools: { ip: '/usr/sbin/ip', nsenter: '/usr/bin/nsenter', sysctl: '/usr/sbin/sysctl' }, hostPid: 1, uplink: null, uplinkMtu: null };
const IPVLAN = MODES.require('ipvlan');
const TEARDOWN = IPVLAN.node!.teardown!;
const CTX: NodeTeardownContext = {
  config: loadConfig({ cniVersion: '1.1.0', name: 'lan', type: 'testcni', mode: 'ipvlan', subnet: '198.18.0.0/24', ipvlan: { master: 'eth0' } }).config,
  facts: FACTS,
  routeProtocol: 151,
  dirs: { run: '/run/testcni', state: '/var/lib/testcni' },
};
const ANCHOR0 = anchorName('eth0');
const ANCHOR1 = anchorName('eth1');
const sh = (argv: string[]) => argv.map(shellQuote).join(' ');
const QUERY = TEARDOWN.observe(CTX).ipvlanLinks as { argv: string[] };

const NODE = `
ip netns add node1
pod pod1
at node1 ip link add eth0 type veth peer name peer0
at node1 ip link add eth1 type veth peer name peer1
at node1 ip link set eth0 up
# what the first ipvlan ADD on eth0 runs on the node
at node1 ${sh(argvOf(anchorStep(FACTS, 'eth0', 'l2')))}
# a pod's child (its DEL's business, not uninstall's) and someone else's child of eth0
at node1 ip link add tcchild link eth0 netns /var/run/netns/pod1 type ipvlan mode l2
at node1 ip link add tcx0 link eth0 type ipvlan mode l2
# eth1's anchor, taken over by someone (addressed), and a device merely named like an anchor
at node1 ${sh(argvOf(anchorStep(FACTS, 'eth1', 'l3')))}
at node1 ip addr add 192.0.2.5/32 dev ${ANCHOR1}
at node1 ip link add tcipv00000000 link eth1 type ipvlan mode l3
report observed "$(at node1 ${sh(QUERY.argv)})"
report links_before "$(at node1 ip -j link show)"
`;

function job(name: string, body: string, files: Record<string, string> = {}) {
  return { name, script: `#!/bin/sh\nset -eu\n. ./lab.sh\n${body.trim()}\n`, files: { 'lab.sh': LAB, ...files }, timeoutMs: 30_000 };
}

function results(j: VmJobResult | undefined): Map<string, string> {
  assert.ok(j, 'the job ran');
  assert.equal(j.exitCode, 0, `${j.name} exited ${j.exitCode}\n${j.output}`);
  return new Map(j.output.split('\n').flatMap((l) => {
    const m = /^RESULT (\S+) ?(.*)$/.exec(l);
    return m ? [[m[1]!, m[2]!] as [string, string]] : [];
  }));
}

const json = (r: Map<string, string>, key: string) => JSON.parse(r.get(key) ?? 'null') as { ifname?: string }[];
const names = (links: { ifname?: string }[]) => links.map((l) => l.ifname).filter(Boolean).sort();
const stepsOf = (p: { steps: Step[] }) => p.steps.map((s) => argvOf(s).join(' '));

describe('ipvlan uninstall teardown on a kernel with ipvlan (emulated VM)', { skip, timeout: 180_000 }, () => {
  let first: Map<string, string>;
  let second: Map<string, string>;
  let plan: { steps: Step[]; kept: string[] };

  before(async () => {
    const seen = await runJobsInVm([job('ipvlan-observe', NODE)]);
    first = results(seen.jobs[0]);
    plan = TEARDOWN.plan(CTX, { ipvlanLinks: json(first, 'observed') });
    const script = ['#!/bin/sh', 'set -eu', ...plan.steps.map((s) => sh(argvOf(s)))].join('\n') + '\n';
    const done = await runJobsInVm([job('ipvlan-teardown', `${NODE}
apply node1 teardown.sh
report links_after "$(at node1 ip -j link show)"
report pod1_after "$(at pod1 ip -j link show)"
report observed_after "$(at node1 ${sh(QUERY.argv)})"
`, { 'teardown.sh': script })]);
    second = results(done.jobs[0]);
  });

  it('plans the removal of eth0\'s anchor only, and says what it left and why', () => {
    assert.deepEqual(stepsOf(plan), [`/usr/sbin/ip link del dev ${ANCHOR0}`]);
    assert.equal(plan.kept.length, 2, plan.kept.join('\n'));
    assert.match(plan.kept.find((k) => k.startsWith(ANCHOR1)) ?? '', /up or addressed \(192\.0\.2\.5\)/);
    assert.match(plan.kept.find((k) => k.startsWith('tcipv00000000')) ?? '', /not the anchor of its master \(eth1\)/);
  });

  it('the same node built again shows the same, and the rendered plan removes exactly the anchor', () => {
    const again = TEARDOWN.plan(CTX, { ipvlanLinks: json(second, 'observed') });
    assert.deepEqual(again, plan, 'the second boot\'s node gives the same plan');
    const before = names(json(second, 'links_before'));
    const after = names(json(second, 'links_after'));
    assert.ok(before.includes(ANCHOR0));
    assert.deepEqual(after, before.filter((n) => n !== ANCHOR0), 'only the anchor went; tcx0, the taken-over anchor and the look-alike stayed');
    assert.ok(names(json(second, 'pod1_after')).includes('tcchild'), 'the pod\'s child is untouched');
    const rerun = TEARDOWN.plan(CTX, { ipvlanLinks: json(second, 'observed_after') });
    assert.deepEqual(rerun.steps, [], 'a second uninstall finds nothing of testcni\'s');
  });
});
