// Hand-written stand-ins for the plans the ipvlan mode will render with
// `testcni plan --dry-run --format sh`, in the same shape as planner/render.ts's sh output:
// absolute tool paths, pod steps entered with `nsenter --net=PATH --`, the node's netns named
// by "$$" (the script's own shell), shared node objects tolerated when already there. The VM
// tests run them inside a node's netns; once the modes exist, their rendered plans replace these.
const IP = '/usr/sbin/ip';
const NSENTER = '/usr/bin/nsenter';

function script(title: string, lines: [describe: string, command: string][]): string {
  const body = lines.flatMap(([d, c]) => [`# ${d}`, c]);
  return ['#!/bin/sh', `# ${title}`, '# Plan: hand-written stand-in for a rendered plan.', 'set -eu', ...body].join('\n') + '\n';
}

function inPod(netns: string, command: string): string {
  return `${NSENTER} --net=${netns} -- ${command}`;
}

export interface IpvlanPod {
  containerId: string;
  netns: string;
  master: string;
  /** the child's name until it is renamed to eth0 inside the pod */
  tempName: string;
  mode: 'l2' | 'l3' | 'l3s';
  /** e.g. 198.18.0.11/24, from the node network */
  address: string;
  gateway: string;
  mtu: number;
}

/** ipvlan pod plan (as the reference plugin does it): the child is born in the pod, then renamed. */
export function ipvlanPodPlan(p: IpvlanPod): string {
  return script(`testcni ADD eth0 (container ${p.containerId}, network testcni, mode ipvlan)`, [
    [`create ipvlan ${p.tempName} on ${p.master} (mode ${p.mode}, mtu ${p.mtu}) in the pod`,
      `${IP} link add link ${p.master} name ${p.tempName} mtu ${p.mtu} netns ${p.netns} type ipvlan mode ${p.mode}`],
    [`rename ${p.tempName} to eth0 (before it is up)`, inPod(p.netns, `${IP} link set ${p.tempName} name eth0`)],
    [`address ${p.address} on eth0`, inPod(p.netns, `${IP} addr add ${p.address} dev eth0`)],
    ['bring eth0 up', inPod(p.netns, `${IP} link set eth0 up`)],
    [`default route via ${p.gateway}`, inPod(p.netns, `${IP} route add default via ${p.gateway} dev eth0`)],
  ]);
}
