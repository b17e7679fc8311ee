// macvlan: each pod gets a macvlan child of a node device (its own MAC on the node network),
// created straight in the pod's netns. The node holds nothing for it: no node plan.
import type { ModeDefinition, PlanRequest, PreflightRequest } from '../../mode.ts';
import { CniError, Code } from '../../../model/errors.ts';
import { podMac } from '../../names.ts';
import { checkMaster, childPlan, childResult, masterOf } from '../../child-link.ts';
import { schema, parse, macField, type MacvlanConfig } from './config.ts';

type Req = PreflightRequest<MacvlanConfig>;

/** The MAC from the config (runtimeConfig, args), else CNI_ARGS MAC, else one derived from the
 *  attachment; a passthru child has its master's. */
function macOf(req: Req): string | null {
  const { modeConfig } = req.config;
  if (modeConfig.mode === 'passthru') return null;
  const fromEnv = req.args?.MAC;
  if (modeConfig.mac) return modeConfig.mac;
  if (fromEnv !== undefined) {
    try {
      return macField('CNI_ARGS MAC', fromEnv);
    } catch (e) {
      throw new CniError(Code.InvalidEnv, 'invalid environment', (e as CniError).details);
    }
  }
  return podMac(req.containerId, req.ifName);
}

export const macvlan: ModeDefinition<'macvlan', MacvlanConfig> = {
  name: 'macvlan',
  summary: 'each pod a macvlan child (its own MAC) of a node device, on the node network; addresses from a range of it',
  schema,
  addressing: { pool: 'subnet' },
  parse,
  tools: () => [],
  uplinkOf: masterOf,
  preflight(req) {
    checkMaster('macvlan', req);
    if (req.config.modeConfig.mode === 'passthru' && req.args?.MAC !== undefined) {
      throw new CniError(Code.InvalidEnv, 'invalid environment', 'CNI_ARGS MAC: a passthru child takes its master\'s MAC');
    }
    macOf(req);
  },
  planAdd: (req: PlanRequest<MacvlanConfig>) => childPlan(req, { kind: 'macvlan', mode: req.config.modeConfig.mode, mac: macOf(req) }),
  resultOf: (req) => childResult(req, macOf(req)),
  node: null,
  labUnsupported: null,
};
