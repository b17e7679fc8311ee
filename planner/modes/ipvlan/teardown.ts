// What uninstall removes of ipvlan's node state: the anchors (anchor.ts), one per master a pod
// ever used, whatever master the config names now. An anchor is testcni's when it is an ipvlan
// child of a master in this namespace, carries the name testcni derives from that master, and
// is as testcni leaves it: down, without addresses. A device with that name in any other state
// is someone's now, and is left alone with a word. Children of the masters in pod namespaces
// are the pods' (DEL removes them); deleting the anchor changes none of them.
import { HOST, type Step } from '../../../model/plan.ts';
import type { NodePlanner, NodeTeardownPlanner } from '../../mode.ts';
import { anchorName } from './anchor.ts';
import type { IpvlanConfig } from './config.ts';

type AddrJson = { ifname?: string; link?: string; flags?: string[]; linkinfo?: { info_kind?: string }; addr_info?: { family?: string; local?: string }[] };

/** testcni's anchors are named tcipv + 8 hex digits (anchor.ts). */
const ANCHOR_LIKE = /^tcipv[0-9a-f]{8}$/;

export const teardown: NodeTeardownPlanner<IpvlanConfig> = {
  observe: (ctx) => ({
    ipvlanLinks: { ns: HOST, mech: 'exec', argv: [ctx.facts.tools.ip, '-d', '-j', 'addr', 'show', 'type', 'ipvlan'], expect: { $exit: 0 } },
  }),
  plan(ctx, observed) {
    const ip = ctx.facts.tools.ip;
    const steps: Step[] = [];
    const kept: string[] = [];
    const links = Array.isArray(observed.ipvlanLinks) ? (observed.ipvlanLinks as AddrJson[]) : [];
    for (const l of [...links].sort((a, b) => String(a.ifname).localeCompare(String(b.ifname)))) {
      const name = l.ifname ?? '';
      if (!ANCHOR_LIKE.test(name)) continue; // not named like an anchor: nothing of testcni's
      if (l.linkinfo?.info_kind !== 'ipvlan' || !l.link || anchorName(l.link) !== name) {
        kept.push(`${name}: named like testcni's ipvlan anchor but not the anchor of its master (${l.link ?? 'unknown'}), left alone`);
        continue;
      }
      const addrs = (l.addr_info ?? []).map((a) => a.local).filter(Boolean);
      if ((l.flags ?? []).includes('UP') || addrs.length > 0) {
        kept.push(`${name}: testcni's ipvlan anchor of ${l.link}, but up or addressed (${addrs.join(', ') || 'up'}): someone uses it, left alone`);
        continue;
      }
      steps.push({
        id: `link.del:host:${name}`, kind: 'link.del', scope: 'node', ns: HOST, mech: 'ip', argv: [ip, 'link', 'del', 'dev', name],
        idempotent: false, undo: null, undoReason: 'uninstall', probe: { ns: HOST, mech: 'links', argv: [ip, '-j', 'link', 'show'], expect: { $none: { ifname: name } } },
        describe: `delete ${name}, the anchor of ${l.link}'s ipvlan mode (the pods' children are not touched)`,
      });
    }
    return { steps, kept };
  },
};

/** ipvlan's node state: nothing for the agent to keep (the first ADD on a master makes its
 *  anchor); only what uninstall removes. */
export const nodePlanner: NodePlanner<IpvlanConfig> = {
  observe: () => ({}),
  plan: () => [],
  teardown,
};
