// ipvlan: each pod gets an ipvlan child of a node device (sharing its MAC), created straight in
// the pod's netns; one mode per master, held by an anchor (anchor.ts). No node plan.
import type { ModeDefinition } from '../../mode.ts';
import type { Probe } from '../../../model/plan.ts';
import { checkMaster, childPlan, childResult, masterOf } from '../../child-link.ts';
import { schema, parse, type IpvlanConfig } from './config.ts';
import { ANCHOR_QUERY, anchorQuery, anchorStep, checkAnchor, observedAnchor } from './anchor.ts';

export const ipvlan: ModeDefinition<'ipvlan', IpvlanConfig> = {
  name: 'ipvlan',
  summary: 'each pod an ipvlan child (sharing its MAC) of a node device, on the node network; addresses from a range of it',
  schema,
  addressing: { pool: 'subnet' },
  parse,
  tools: () => [],
  uplinkOf: masterOf,
  observe: (_config, facts): Record<string, Probe> => (facts.uplink ? { [ANCHOR_QUERY]: anchorQuery(facts, facts.uplink) } : {}),
  preflight(req) {
    const master = checkMaster('ipvlan', req);
    checkAnchor(req.facts, master, req.config.modeConfig.mode);
  },
  planAdd(req) {
    const { mode } = req.config.modeConfig;
    const master = req.facts.uplink;
    const nodeSteps = master && !observedAnchor(req.facts) ? [anchorStep(req.facts, master, mode)] : [];
    return childPlan(req, { kind: 'ipvlan', mode, mac: null, nodeSteps });
  },
  resultOf: (req) => childResult(req, null),
  node: null,
  labUnsupported: 'needs a kernel with ipvlan, which the development and CI kernels lack (`ip link add … type ipvlan`: Unknown device type); its plans are run in a VM instead',
};
