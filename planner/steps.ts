// Small constructors for the step shapes the modes share, so every mode probes and undoes a
// link, an address or a sysctl the same way.
import { HOST, type Ns, type NodeFacts, type Step, type Probe } from './types.ts';

export function linkExistsProbe(facts: NodeFacts, ns: Ns, name: string): Probe {
  return { ns, argv: [facts.tools.ip, '-j', 'link', 'show'], expect: { $some: { ifname: name } } };
}

export function sysctlStep(facts: NodeFacts, ns: Ns, scope: Step['scope'], key: string, value: string, why: string): Step {
  return {
    id: `sysctl:${ns === HOST ? 'host' : 'pod'}:${key}`,
    kind: 'sysctl.set',
    scope,
    ns,
    // -e: a key the kernel lacks (IPv6 disabled) is not an error.
    argv: [facts.tools.sysctl, '-q', '-e', '-w', `${key}=${value}`],
    idempotent: true,
    undo: null,
    undoReason: scope === 'node' ? 'node setting shared by every pod' : 'belongs to the pod netns and goes with it',
    probe: { ns, argv: [facts.tools.sysctl, '-n', '-e', key], expect: { $text: value } },
    describe: `set ${key}=${value} (${why})`,
  };
}
