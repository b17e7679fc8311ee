// The lab's network: an underlay bridge in its own namespace and one namespace per node, each
// wired to the bridge by a veth, addressed from 198.18.0.0/15 (the benchmarking range, never a
// real network) with a default route via the bridge so the agent can find its underlay itself.
import type { LabRecord, LabState, LabNode } from './state.ts';
import { must, runner, tools, inNetns } from './sys.ts';
import { parseRoutes, type NodeRoute } from '../planner/node-routes.ts';

export const UNDERLAY = { bridge: 'br0', gateway: '198.18.0.1', prefix: 24 } as const;
export const MAX_NODES = 200;

/** Pods of a mode that puts them on the node network (ModeAddressing.pool `subnet`: macvlan) take
 *  their addresses from the top of the underlay, one range for every node; the nodes' own
 *  addresses (.11 up) stay below it. */
export const UNDERLAY_POD_RANGE = { start: '198.18.0.128', end: '198.18.0.254', size: 127, maxNodes: 117 } as const;

export function underlaySubnet(): string {
  return `${UNDERLAY.gateway.replace(/\.\d+$/, '.0')}/${UNDERLAY.prefix}`;
}

export function underlayNetns(lab: string): string {
  return `${lab}-u`;
}

export function nodeNetns(lab: string, node: string): string {
  return `${lab}-${node}`;
}

export function nodeUnderlayIp(index: number): string {
  if (index < 1 || index > MAX_NODES) throw new Error(`node index ${index} is outside 1..${MAX_NODES}`);
  return `198.18.0.${10 + index}`;
}

/** Creates a netns, recorded first so `down` removes it even if this process dies right after. */
export async function addNetns(rec: LabRecord, name: string): Promise<void> {
  rec.update((s) => {
    if (!s.netns.includes(name)) s.netns.push(name);
  });
  await must([tools.ip, 'netns', 'add', name]);
  await must([tools.ip, '-n', name, 'link', 'set', 'lo', 'up']);
}

/** Deletes a netns; one that is already gone is fine. */
export async function delNetns(name: string): Promise<void> {
  const r = await runner.run([tools.ip, 'netns', 'del', name]);
  if (r.exitCode !== 0 && !/No such file|not found|Invalid/i.test(r.stderr)) throw new Error(`ip netns del ${name}: ${r.stderr.trim()}`);
}

export async function createUnderlay(rec: LabRecord): Promise<void> {
  const ns = rec.state.underlay.netns;
  await addNetns(rec, ns);
  const { bridge, gateway, prefix } = UNDERLAY;
  await must([tools.ip, '-n', ns, '-batch', '-'], {
    input: [`link add ${bridge} type bridge`, `addr add ${gateway}/${prefix} dev ${bridge}`, `link set ${bridge} up`].join('\n') + '\n',
  });
}

/** The node's netns and its uplink: `eth0` in the node, its peer (named after the node) on the bridge. */
export async function createNodeNetwork(rec: LabRecord, node: LabNode): Promise<void> {
  const u = rec.state.underlay.netns;
  await addNetns(rec, node.netns);
  await must([tools.ip, '-n', u, '-batch', '-'], {
    input: [`link add ${node.name} type veth peer name eth0 netns ${node.netns}`, `link set ${node.name} master ${UNDERLAY.bridge} up`].join('\n') + '\n',
  });
  await must([tools.ip, '-n', node.netns, '-batch', '-'], {
    input: [`addr add ${node.underlayIp}/${UNDERLAY.prefix} dev eth0`, 'link set eth0 up', `route add default via ${UNDERLAY.gateway}`].join('\n') + '\n',
  });
}

/** The routes the agents installed in a node (our protocol number only), as the kernel has them. */
export async function nodeRoutes(s: LabState, node: LabNode): Promise<NodeRoute[]> {
  const r = await runner.run(inNetns(node.netns, [tools.ip, '-j', 'route', 'show', 'proto', String(s.routeProtocol)]));
  if (r.exitCode !== 0) throw new Error(`routes of ${node.name}: ${r.stderr.trim()}`);
  return sortRoutes(parseRoutes(r.stdout.trim() ? JSON.parse(r.stdout) : []));
}

export function sortRoutes(routes: NodeRoute[]): NodeRoute[] {
  return [...routes].sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
}
