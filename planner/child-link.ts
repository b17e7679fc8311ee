// Pods on a child device of a node device, on the node network itself (ipvlan, macvlan): the
// config both modes share (their section's `master` and `mode`, host-local's node-network IPAM
// keys), the pod plan that creates the child straight inside the pod's netns, renames it and
// addresses it, the checks against the node's facts, and the result.
import ipamSchema from '../schemas/ipam.schema.json' with { type: 'json' };
import { HOST, type NodeFacts, type Pattern, type Probe, type Step } from '../model/plan.ts';
import type { CommonConfig, NetworkConfig } from '../model/config.ts';
import type { Result } from '../model/result.ts';
import type { JsonSchema, PlanRequest, PreflightRequest } from './mode.ts';
import { badField, cidrField, ifNameField, ipField } from './config-fields.ts';
import { sysctlStep, addressStep, linkUpStep, routeStep, podMtu, podIpv6Steps, type StepPlace } from './steps.ts';
import { formatCidr, formatIp } from '../lib/ipv4.ts';
import { fnv1a64 } from '../lib/hash.ts';

export type ChildKind = 'ipvlan' | 'macvlan';

export interface PodRoute {
  /** a CIDR; 0.0.0.0/0 is the default route */
  dst: string;
  gw: string;
}

/** The parsed section of a child-link mode. */
export interface ChildLinkConfig<M extends string = string> {
  /** the node device the children hang off; null: the uplink, else the default route's */
  master: string | null;
  /** the kernel's mode for the child (ipvlan l2/l3/l3s, macvlan bridge/private/vepa/passthru) */
  mode: M;
  /** the pod's routes (host-local's ipam.routes); by default one default route via the gateway */
  routes: PodRoute[];
}

/** Why a pod-side step needs no undo of its own. */
export const GOES_WITH_CHILD = 'removed with the child link';

const { block: _block, blockSize: _blockSize, ...ipamProperties } = ipamSchema.properties;

/** The IPAM section of a node-network mode: host-local's keys for one range on the node network
 *  (no per-node blocks). */
export const NODE_NETWORK_IPAM_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    ...ipamProperties,
    subnet: { type: 'string', minLength: 7, maxLength: 18, description: 'the node network (CIDR); the same as the top-level subnet' },
    rangeStart: { type: 'string', description: 'first address handed to pods (default: the subnet\'s first)' },
    rangeEnd: { type: 'string', description: 'last address handed to pods (default: the subnet\'s last)' },
    gateway: { type: 'string', description: 'the pods\' gateway on the node network (default: the subnet\'s first address)' },
    routes: {
      type: 'array',
      maxItems: 64,
      items: {
        type: 'object',
        required: ['dst'],
        properties: { dst: { type: 'string' }, gw: { type: 'string' } },
        additionalProperties: false,
      },
      description: 'the pod\'s routes (default: 0.0.0.0/0 via the gateway)',
    },
  },
  additionalProperties: false,
};

/** The mode's own section: `{"<kind>": {"master": "eth0", "mode": "..."}}`, the reference
 *  plugins' keys under the mode's name (testcni's own `mode` names the testcni mode). */
export function sectionSchema(kind: ChildKind, modes: readonly string[], dflt: string): Record<string, JsonSchema> {
  return {
    [kind]: {
      type: 'object',
      properties: {
        master: { $ref: '#/$defs/ifName', description: 'the node device the pods\' children hang off (default: the default route\'s interface)' },
        mode: { enum: [...modes], description: `the ${kind} mode (default ${dflt})` },
      },
      additionalProperties: false,
    },
    ipam: NODE_NETWORK_IPAM_SCHEMA,
  };
}

function routesOf(raw: Record<string, unknown>, common: CommonConfig): PodRoute[] {
  const given = (raw.ipam as { routes?: { dst: string; gw?: string }[] } | undefined)?.routes;
  if (!given) return [{ dst: '0.0.0.0/0', gw: common.ipam.gateway }];
  const seen = new Set<string>();
  return given.map((r, i) => {
    const dst = formatCidr(cidrField(`ipam.routes[${i}].dst`, r.dst));
    if (seen.has(dst)) badField(`ipam.routes[${i}].dst`, `${dst} is listed twice`);
    seen.add(dst);
    return { dst, gw: r.gw === undefined ? common.ipam.gateway : formatIp(ipField(`ipam.routes[${i}].gw`, r.gw)) };
  });
}

export function parseSection<M extends string>(kind: ChildKind, raw: Record<string, unknown>, common: CommonConfig, dflt: M): ChildLinkConfig<M> {
  if (common.ipMasq) {
    badField('ipMasq', `${kind} pods are on the node network: their traffic leaves through the master, not through the node's NAT`);
  }
  const section = (raw[kind] ?? {}) as { master?: unknown; mode?: M };
  return {
    master: ifNameField(`${kind}.master`, section.master) ?? null,
    mode: section.mode ?? dflt,
    routes: routesOf(raw, common),
  };
}

/** The node device the children hang off, as the facts gatherer should find it. */
export function masterOf(config: NetworkConfig<string, ChildLinkConfig>): string | null {
  return config.modeConfig.master ?? config.uplink;
}

/** The checks every child-link ADD needs: the master exists and carries the pod MTU. */
export function checkMaster(kind: ChildKind, req: PreflightRequest<ChildLinkConfig>): string {
  const { facts, config } = req;
  const master = facts.uplink;
  if (master === null) badField(`${kind}.master`, 'is not given and the node has no default route to take it from');
  if (facts.uplinkMtu === null) badField(`${kind}.master`, `${JSON.stringify(master)}: no such device on this node`);
  if (config.mtu !== null && config.mtu > facts.uplinkMtu) {
    badField('mtu', `${config.mtu} is above the MTU of the master ${master} (${facts.uplinkMtu})`);
  }
  return master;
}

/** The child's name between its creation and its rename: derived, so DEL finds it after a crash. */
export function childTempName(containerId: string, ifName: string): string {
  return 'tcl' + fnv1a64(`child/${containerId}/${ifName}`).slice(0, 10);
}

/** "Is the pod's interface this mode's child, in this kernel mode?" */
export function childProbe(facts: NodeFacts, netns: string, ifName: string, kind: ChildKind, info: Record<string, Pattern>): Probe {
  return {
    ns: netns,
    mech: 'exec',
    argv: [facts.tools.ip, '-d', '-j', 'link', 'show', 'dev', ifName],
    expect: { $some: { ifname: ifName, linkinfo: { info_kind: kind, info_data: info } } },
  };
}

export interface ChildSpec {
  kind: ChildKind;
  /** the kernel mode, as `ip` takes and shows it */
  mode: string;
  /** set at creation (macvlan), or null: the kernel's choice (ipvlan: the master's MAC) */
  mac: string | null;
  /** node steps that go before the child (ipvlan: the master's mode anchor) */
  nodeSteps?: Step[];
}

/**
 * The pod's sysctls, the child created from the node straight into the pod's netns under a
 * temporary name (`ip link add … link MASTER netns POD`: no move between namespaces), then in
 * the pod: renamed to CNI_IFNAME, addressed, brought up, routed. The creation's undo deletes
 * the temporary name and the rename's deletes the final one, so a crash between the two
 * leaves nothing that DEL cannot find.
 */
export function childPlan(req: PlanRequest<ChildLinkConfig>, spec: ChildSpec): Step[] {
  const { facts, netns, ifName, containerId } = req;
  const master = facts.uplink ?? '(no master)';
  const tmp = childTempName(containerId, ifName);
  const mtu = String(podMtu(req));
  const pod: StepPlace = { ns: netns, scope: 'pod', undoReason: GOES_WITH_CHILD };
  const probe = childProbe(facts, netns, ifName, spec.kind, { mode: spec.mode });
  const createId = `link.${spec.kind}:pod:${ifName}`;
  const steps: Step[] = [
    ...podIpv6Steps(req),
    // Set before the child exists, which copies it: the pod announces its address when the link
    // comes up, so neighbours drop the MAC of a previous pod that had the address.
    sysctlStep(facts, netns, 'pod', 'net.ipv4.conf.default.arp_notify', '1', 'announce the address when the link comes up'),
    ...(spec.nodeSteps ?? []),
    {
      id: createId,
      kind: 'link.add',
      scope: 'pod',
      ns: HOST,
      mech: 'ip',
      argv: [facts.tools.ip, 'link', 'add', tmp, 'link', master, 'netns', netns,
        ...(spec.mac ? ['address', spec.mac] : []), 'mtu', mtu, 'type', spec.kind, 'mode', spec.mode],
      idempotent: false,
      undo: { ns: netns, mech: 'ip', argv: [facts.tools.ip, 'link', 'del', tmp] },
      probe,
      describe: `create ${spec.kind} ${tmp} (mode ${spec.mode}) on ${master}, straight in the pod (mtu ${mtu})`,
    },
    {
      id: `link.name:pod:${ifName}`,
      kind: 'link.set',
      scope: 'pod',
      ns: netns,
      mech: 'ip',
      argv: [facts.tools.ip, 'link', 'set', 'dev', tmp, 'name', ifName],
      idempotent: false,
      undo: { ns: netns, mech: 'ip', argv: [facts.tools.ip, 'link', 'del', ifName] },
      supersedes: createId,
      probe,
      describe: `rename ${tmp} to ${ifName}`,
    },
    addressStep(facts, pod, ifName, req.lease.address),
    linkUpStep(facts, pod, ifName),
    ...req.config.modeConfig.routes.map((r) =>
      routeStep(facts, pod, { dst: r.dst === '0.0.0.0/0' ? 'default' : r.dst, via: r.gw, dev: ifName })),
  ];
  return steps;
}

export function childResult(req: PlanRequest<ChildLinkConfig>, mac: string | null): Result {
  return {
    interfaces: [{ name: req.ifName, ...(mac ? { mac } : {}), mtu: podMtu(req), sandbox: req.netns }],
    ips: [{ address: req.lease.address, gateway: req.lease.gateway, interface: 0 }],
    routes: req.config.modeConfig.routes.map((r) => ({ dst: r.dst, gw: r.gw })),
    dns: {},
  };
}
