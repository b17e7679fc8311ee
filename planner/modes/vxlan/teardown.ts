// What uninstall removes of vxlan's node state: the VXLAN device, when it is the external device
// on the configured port that testcni makes (its route into the device goes with it, and so do
// its filters), and this node's pin directory (maps and programs), then the network's and
// testcni's directories in bpffs if nothing else is left in them. bpffs stays mounted.
import { HOST, type Step } from '../../../model/plan.ts';
import type { NodeTeardownPlanner } from '../../mode.ts';
import type { VxlanConfig } from './config.ts';
import { pinDirOf, networkPinRoot } from './dataplane.ts';

type LinkJson = { ifname?: string; linkinfo?: { info_kind?: string; info_data?: { external?: boolean; port?: number } } };

export const teardown: NodeTeardownPlanner<VxlanConfig> = {
  outsideNetns: true,
  observe: (ctx) => ({
    device: { ns: HOST, mech: 'exec', argv: [ctx.facts.tools.ip, '-j', '-d', 'link', 'show', 'dev', ctx.config.modeConfig.device], expect: { $exit: 0 } },
    pins: { ns: HOST, mech: 'path', path: pinDirOf(ctx.config, ctx.facts), expect: { $some: { type: 'directory' } } },
  }),
  plan(ctx, observed) {
    const t = ctx.facts.tools;
    const { device, port } = ctx.config.modeConfig;
    const steps: Step[] = [];
    const kept: string[] = [];
    const link = Array.isArray(observed.device) ? (observed.device[0] as LinkJson | undefined) : undefined;
    if (link) {
      const d = link.linkinfo?.info_data;
      if (link.linkinfo?.info_kind === 'vxlan' && d?.external === true && d.port === port) {
        steps.push({
          id: `link.del:host:${device}`, kind: 'link.del', scope: 'node', ns: HOST, mech: 'ip', argv: [t.ip, 'link', 'del', 'dev', device],
          idempotent: false, undo: null, undoReason: 'uninstall', probe: { ns: HOST, mech: 'links', argv: [t.ip, '-j', 'link', 'show'], expect: { $none: { ifname: device } } },
          describe: `delete VXLAN device ${device} (its route and filters go with it)`,
        });
      } else kept.push(`${device}: not an external VXLAN device on port ${port}, left alone`);
    }
    const pins = pinDirOf(ctx.config, ctx.facts);
    if (Array.isArray(observed.pins)) {
      const root = networkPinRoot(ctx.config);
      const exec = (id: string, argv: string[], describe: string): Step => ({
        id, kind: 'fs.remove', scope: 'node', ns: HOST, mech: 'exec', argv, idempotent: true, undo: null, undoReason: 'uninstall', probe: null, describe,
      });
      steps.push(exec(`fs.remove:host:${pins}`, [t.rm!, '-rf', pins], `remove this node's BPF maps and programs (${pins})`));
      steps.push(exec(`fs.remove:host:${root}`, [t.rmdir!, '--ignore-fail-on-non-empty', root, root.replace(/\/[^/]+$/, '')],
        `remove ${root} and its parent if no other node or network pins there`));
    }
    return { steps, kept };
  },
};
