// Multi-node tests run the lab harness itself (lab/): these helpers only choose a unique name
// and dir, guarantee `lab down` at the end, and read what a node holds for an attachment.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { rootSkipReason, uniquePrefix, inNetns, PLUGIN } from './netns.ts';
import { etcdAvailable } from '../../lab/etcd.ts';
import { labUp, type UpReport } from '../../lab/up.ts';
import { labDown } from '../../lab/down.ts';
import type { AgentTuning } from '../../lab/agents.ts';
import type { LabNode, LabState } from '../../lab/state.ts';
import { hostVethName } from '../../planner/names.ts';

/** Why the multi-node tests cannot run here, or undefined when they can. */
export function labSkipReason(): string | undefined {
  return rootSkipReason(['ping', 'fping']) ?? etcdAvailable() ?? undefined;
}

export interface TestLab {
  name: string;
  dir: string;
  up(nodes: number, pods: number, tuning?: Partial<AgentTuning>): Promise<UpReport>;
  down(): Promise<void>;
}

/** A lab with a unique name and dir; register `down` with after()/t.after() before `up`. */
export function testLab(tag: string, mode = 'host-gw'): TestLab {
  const name = uniquePrefix(tag);
  const dir = join(tmpdir(), `${name}-lab`);
  return {
    name,
    dir,
    up: (nodes, pods, tuning) => labUp({ name, dir, nodes, pods, mode, binary: PLUGIN, nodeExec: process.execPath, ...(tuning ? { tuning } : {}) }),
    down: async () => {
      await labDown(dir);
    },
  };
}

export interface AttachmentTraces {
  /** journal state, or null when there is no journal */
  journal: string | null;
  hostVeth: boolean;
  podInterface: boolean;
}

/** What a node and a pod netns hold of one attachment: journal, host veth, pod interface. */
export function attachmentTraces(s: LabState, node: LabNode, containerId: string, podNetns: string, ifName = 'eth0'): AttachmentTraces {
  const file = join(node.stateDir, 'journal', s.name, `${containerId}@${ifName}.json`);
  const journal = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { state: string }).state : null;
  const hostVeth = inNetns(node.netns, ['ip', 'link', 'show', 'dev', hostVethName(containerId, ifName)], { allowFail: true }).code === 0;
  const podInterface = inNetns(podNetns, ['ip', 'link', 'show', 'dev', ifName], { allowFail: true }).code === 0;
  return { journal, hostVeth, podInterface };
}

/** Address handles in the lab's etcd (containerId/ifName -> ip), read with etcdctl. */
export function etcdHandles(s: LabState): Record<string, string> {
  const r = inNetns(s.underlay.netns, ['etcdctl', '--endpoints', s.etcd!.endpoint, 'get', '--prefix', '/testcni/handles/', '-w', 'json']);
  const kvs = (JSON.parse(r.stdout) as { kvs?: { key: string; value: string }[] }).kvs ?? [];
  const b64 = (x: string) => Buffer.from(x, 'base64').toString('utf8');
  return Object.fromEntries(kvs.map((kv) => [b64(kv.key).slice('/testcni/handles/'.length), b64(kv.value)]));
}
