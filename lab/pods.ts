// Lab pods: a netns per pod, attached by running the plugin binary exactly as a container
// runtime does (CNI_* environment, the network config on stdin), with the config the node's
// agent wrote into its CNI conf dir.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LabRecord, LabState, LabNode, LabPod } from './state.ts';
import { runner, tools, inNetns, netnsPath, LabError } from './sys.ts';
import { addNetns, delNetns } from './topology.ts';
import { readNetworkConfig } from '../cli/config-file.ts';

export interface CniRun {
  /** process exit status */
  exit: number;
  /** 0 on success, else the CNI error code of the error document (-1 if there is none) */
  code: number;
  json: Record<string, unknown> | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC';
  containerId?: string;
  netns?: string;
  ifName?: string;
  /** the network config; default: the one the node's agent wrote */
  config?: Record<string, unknown>;
}

/** The node's network config as a runtime reads it: the first file of its conf dir, with a
 *  conflist flattened to the testcni entry (cniVersion and name injected). */
export function nodeNetworkConfig(node: LabNode): Record<string, unknown> {
  const files = existsSync(node.confDir) ? readdirSync(node.confDir).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort() : [];
  if (files.length === 0) throw new LabError(`${node.name}: no CNI config in ${node.confDir} (is its agent ready?)`);
  return readNetworkConfig(join(node.confDir, files[0]!), () => '');
}

export async function runCni(s: LabState, node: LabNode, call: CniCall): Promise<CniRun> {
  const env: Record<string, string | undefined> = {
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifName ?? (call.containerId ? 'eth0' : undefined),
    CNI_PATH: '/opt/cni/bin',
  };
  // The runner gives every program a fixed environment; env(1) adds this call's CNI variables.
  const vars = Object.entries(env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  const argv = [tools.env, ...vars, ...inNetns(node.netns, [s.nodeExec, s.binary])];
  const r = await runner.run(argv, { input: JSON.stringify(call.config ?? nodeNetworkConfig(node)), timeoutMs: 60_000 });
  let json: Record<string, unknown> | null = null;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : null;
  } catch { /* reported through stdout */ }
  const code = r.exitCode === 0 ? 0 : typeof json?.code === 'number' ? json.code : -1;
  return { exit: r.exitCode, code, json, stdout: r.stdout, stderr: r.stderr, ms: r.ms };
}

export function podNetns(lab: string, node: string, pod: string): string {
  return `${lab}-${node}-${pod}`;
}

export function podAddress(result: Record<string, unknown> | null): string | null {
  const ips = (result?.ips ?? []) as { address?: string }[];
  return ips[0]?.address?.split('/')[0] ?? null;
}

export interface PodOutcome {
  pod: LabPod;
  add: CniRun;
}

/**
 * Creates pods (netns + ADD), all at once like a kubelet burst. Every pod is recorded before
 * anything is made for it. Failed ADDs are reported in the outcomes, not thrown.
 */
export async function addPods(rec: LabRecord, specs: { node: LabNode; name: string }[]): Promise<PodOutcome[]> {
  const s = rec.state;
  const pods: LabPod[] = specs.map(({ node, name }) => ({
    node: node.name,
    name: `${node.name}-${name}`,
    netns: podNetns(s.name, node.name, name),
    containerId: podNetns(s.name, node.name, name),
    ifName: 'eth0',
    state: 'creating',
    ip: null,
  }));
  rec.update((st) => {
    for (const p of pods) {
      if (st.pods.some((x) => x.name === p.name)) throw new LabError(`pod ${p.name} exists already`);
    }
    st.pods.push(...pods);
  });
  return Promise.all(
    pods.map(async (pod, i) => {
      await addNetns(rec, pod.netns);
      const add = await runCni(s, specs[i]!.node, { command: 'ADD', containerId: pod.containerId, netns: netnsPath(pod.netns), ifName: pod.ifName });
      rec.update(() => {
        pod.state = add.code === 0 ? 'ready' : 'failed';
        pod.ip = podAddress(add.json);
        if (add.code !== 0) pod.error = `code ${add.code}: ${String(add.json?.msg ?? add.stderr.trim().slice(0, 200))}`;
      });
      return { pod, add };
    }),
  );
}

/** DEL (best effort: a DEL of a pod whose agent or config is gone is skipped), then its netns. */
export async function deletePod(rec: LabRecord, pod: LabPod): Promise<CniRun | null> {
  const node = rec.state.nodes.find((n) => n.name === pod.node);
  let del: CniRun | null = null;
  if (node) {
    try {
      del = await runCni(rec.state, node, { command: 'DEL', containerId: pod.containerId, netns: netnsPath(pod.netns), ifName: pod.ifName });
    } catch { /* no config: the ADD never ran */ }
  }
  await delNetns(pod.netns);
  rec.update((st) => {
    st.pods = st.pods.filter((p) => p.name !== pod.name);
    st.netns = st.netns.filter((n) => n !== pod.netns);
  });
  return del;
}
