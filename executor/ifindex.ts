// Late-bound ifindexes (model/plan.ts ifindexToken): a step or probe that names links in
// `ifindexOf` gets their indexes, read right before it runs, in place of the tokens. In the
// node's own namespace they come from sysfs when it is ours (no process); otherwise one
// `ip -j link show` per namespace answers for all of a unit's links.
import { HOST, ifindexToken, type NodeFacts, type Ns } from '../model/plan.ts';
import type { Runner } from './runner.ts';
import { inNs } from './namespaces.ts';
import type { NodeSystem } from './system.ts';

/** The four bytes a BPF map holds for an ifindex (u32, host order: little-endian here), as hex. */
export function ifindexHex(index: number): string[] {
  return [index & 0xff, (index >>> 8) & 0xff, (index >>> 16) & 0xff, index >>> 24].map((b) => b.toString(16).padStart(2, '0'));
}

export class MissingLink extends Error {}

/** Index of each link in `devs` (namespace `ns`); a link that does not exist is a MissingLink. */
export async function readIfindexes(ns: Ns, devs: readonly string[], facts: NodeFacts, runner: Runner, sys: NodeSystem): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const wanted = [...new Set(devs)];
  if (wanted.length === 0) return out;
  if (ns === HOST) {
    for (const dev of wanted) {
      const i = sys.ifindex(dev);
      if (i === null) break;
      if (i === 0) throw new MissingLink(`link ${dev} does not exist`);
      out.set(dev, i);
    }
    if (out.size === wanted.length) return out;
  }
  const r = await runner.run(inNs(facts, ns, [facts.tools.ip, '-j', 'link', 'show']));
  if (r.exitCode !== 0) throw new MissingLink(`links of ${ns} could not be read: ${r.stderr.trim()}`);
  const links = JSON.parse(r.stdout || '[]') as { ifname?: string; ifindex?: number }[];
  for (const dev of wanted) {
    const l = links.find((x) => x.ifname === dev);
    if (!l?.ifindex) throw new MissingLink(`link ${dev} does not exist`);
    out.set(dev, l.ifindex);
  }
  return out;
}

/** argv with each ifindex token replaced by the link's four bytes. */
export function bindArgv(argv: readonly string[], indexes: Map<string, number>): string[] {
  const tokens = new Map([...indexes].map(([dev, i]) => [ifindexToken(dev), ifindexHex(i)]));
  return argv.flatMap((a) => tokens.get(a) ?? [a]);
}

/** A `$text` expectation (bpftool's JSON) with each quoted token replaced by the quoted bytes. */
export function bindText(text: string, indexes: Map<string, number>): string {
  let out = text;
  for (const [dev, i] of indexes) {
    out = out.split(JSON.stringify(ifindexToken(dev))).join(ifindexHex(i).map((b) => JSON.stringify(`0x${b}`)).join(','));
  }
  return out;
}
