// The lab's record of everything it made (<dir>/lab.json). Every namespace, process and pod is
// written down *before* it is created, so `lab down` can remove a half-built lab after `up`
// crashed at any point.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.ts';

export const DEFAULT_LAB_NAME = 'tclab';
export const LAB_ROOT = '/run/testcni-lab';
export const STATE_FILE = 'lab.json';

export interface LabNode {
  /** node name in the registry, e.g. n1 */
  name: string;
  netns: string;
  underlayIp: string;
  /** per-node directory: agent socket, state dir, CNI conf dir, agent log */
  dir: string;
  socket: string;
  stateDir: string;
  confDir: string;
  logFile: string;
  /** the agent's command line, kept so a restart uses the same configuration */
  agentArgv: string[];
  agentPid: number | null;
}

export interface LabPod {
  node: string;
  name: string;
  netns: string;
  containerId: string;
  ifName: string;
  /** creating: ADD not answered yet; ready: attached; failed: ADD failed */
  state: 'creating' | 'ready' | 'failed';
  ip: string | null;
  error?: string;
}

export interface LabState {
  version: 1;
  name: string;
  dir: string;
  mode: string;
  /** the testcni entry (dist/testcni.cjs) the agents and pod ADDs run */
  binary: string;
  /** the Node.js executable that runs it */
  nodeExec: string;
  createdAt: string;
  phase: 'creating' | 'up' | 'failed';
  underlay: { netns: string; bridge: string; gateway: string; prefix: number };
  routeProtocol: number;
  etcd: { pid: number | null; endpoint: string; dir: string; logFile: string } | null;
  /** every netns this lab made or is about to make, in creation order */
  netns: string[];
  nodes: LabNode[];
  pods: LabPod[];
}

export function defaultLabDir(name: string): string {
  return join(LAB_ROOT, name);
}

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

/** Reads a lab's state, or null when there is no lab in `dir`. */
export function readLabState(dir: string): LabState | null {
  const path = statePath(dir);
  if (!existsSync(path)) return null;
  const s = JSON.parse(readFileSync(path, 'utf8')) as LabState;
  if (s.version !== 1) throw new Error(`${path}: unknown lab state version ${String(s.version)}`);
  return s;
}

/** The state of a running `up`: every change is on disk before the next action. */
export class LabRecord {
  constructor(readonly state: LabState) {}

  save(): void {
    writeFileAtomic(statePath(this.state.dir), JSON.stringify(this.state, null, 2) + '\n', { mode: 0o644 });
  }

  update(fn: (s: LabState) => void): void {
    fn(this.state);
    this.save();
  }

  node(name: string): LabNode {
    const n = this.state.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`lab ${this.state.name} has no node ${name}`);
    return n;
  }
}
