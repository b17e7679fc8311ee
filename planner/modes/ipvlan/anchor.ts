// One ipvlan mode per master: the kernel keeps the mode per master (its "port"), and a child
// created with another mode silently switches every child already on it. A master's children
// live in pod namespaces, out of the node's sight, so testcni keeps one child of its own in the
// node's namespace, the anchor: down, unaddressed, never undone. The kernel reports the port's
// mode on every child, so the anchor shows the mode the master carries, and an ADD that asks for
// another is refused before anything changes.
import { HOST, type NodeFacts, type Probe, type Step } from '../../../model/plan.ts';
import { fnv1a64 } from '../../../lib/hash.ts';
import { badField } from '../../config-fields.ts';
import type { IpvlanMode } from './config.ts';

export function anchorName(master: string): string {
  return 'tcipv' + fnv1a64(`ipvlan-anchor/${master}`).slice(0, 8);
}

export const ANCHOR_QUERY = 'ipvlanAnchor';

export function anchorQuery(facts: NodeFacts, master: string): Probe {
  return { ns: HOST, mech: 'exec', argv: [facts.tools.ip, '-d', '-j', 'link', 'show', 'dev', anchorName(master)], expect: { $exit: 0 } };
}

interface LinkJson {
  link?: string;
  linkinfo?: { info_kind?: string; info_data?: { mode?: string } };
}

/** What the pre-planning query saw: absent (no anchor yet), or the anchor's kind, lower and mode. */
export function observedAnchor(facts: NodeFacts): LinkJson | null | undefined {
  const seen = facts.observed?.[ANCHOR_QUERY];
  if (seen === undefined) return undefined; // not asked (a DEL or an operator's plan without facts)
  return Array.isArray(seen) && seen.length > 0 ? (seen[0] as LinkJson) : null;
}

/** Refuses an ADD whose mode differs from the one the master carries. */
export function checkAnchor(facts: NodeFacts, master: string, mode: IpvlanMode): void {
  const a = observedAnchor(facts);
  if (!a) return;
  const name = anchorName(master);
  if (a.linkinfo?.info_kind !== 'ipvlan' || (a.link !== undefined && a.link !== master)) {
    badField('ipvlan.master', `${name}, testcni's ipvlan anchor for ${master}, is not an ipvlan child of it: remove that device`);
  }
  const carried = a.linkinfo?.info_data?.mode;
  if (carried !== mode) {
    badField('ipvlan.mode', `master ${master} carries ipvlan mode ${carried} (every child of a master has its mode, and a new one would switch them all); this network asks for ${mode}`);
  }
}

/** The anchor step, planned while the master has none (the first ipvlan pod on it). Its probe
 *  reads the mode too: a concurrent first ADD with another mode fails instead of switching it. */
export function anchorStep(facts: NodeFacts, master: string, mode: IpvlanMode): Step {
  const name = anchorName(master);
  return {
    id: `link.ipvlan-anchor:host:${name}`,
    kind: 'link.add',
    scope: 'node',
    ns: HOST,
    mech: 'ip',
    argv: [facts.tools.ip, 'link', 'add', name, 'link', master, 'type', 'ipvlan', 'mode', mode],
    idempotent: false,
    undo: null,
    undoReason: `holds ${master}'s ipvlan mode for every pod on it`,
    probe: { ...anchorQuery(facts, master), expect: { $some: { ifname: name, linkinfo: { info_kind: 'ipvlan', info_data: { mode } } } } },
    describe: `ensure ${name}, the anchor of ${master}'s ipvlan mode ${mode} (down, no address)`,
  };
}
