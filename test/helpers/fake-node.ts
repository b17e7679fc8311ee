// A fake runner and a fake in-process node for executor tests: they record every command and
// answer from a small model of links, so nothing on the machine is touched.
import type { Runner, RunResult, RunOptions } from '../../executor/runner.ts';
import type { NodeSystem, PathInfo, NeighbourEntry } from '../../executor/system.ts';
import type { NodeFacts } from '../../model/plan.ts';

export const FAKE_FACTS: NodeFacts = {
  tools: { ip: '/usr/sbin/ip', nsenter: '/usr/bin/nsenter', sysctl: '/usr/sbin/sysctl', iptables: '/usr/sbin/iptables' },
  hostPid: 4242,
  uplink: 'eth0',
  uplinkMtu: 1500,
};

export interface Call {
  argv: string[];
  input: string;
}

type Responder = (call: Call) => Partial<RunResult> | undefined;

export class FakeRunner implements Runner {
  calls: Call[] = [];
  private responders: Responder[] = [];

  get spawned(): number {
    return this.calls.length;
  }

  /** Adds a responder; the first one that returns something answers. Default: exit 0. */
  on(r: Responder): this {
    this.responders.push(r);
    return this;
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const call = { argv, input: opts.input ?? '' };
    this.calls.push(call);
    let res: Partial<RunResult> = {};
    for (const r of this.responders) {
      const got = r(call);
      if (got) {
        res = got;
        break;
      }
    }
    return { argv, exitCode: 0, stdout: '', stderr: '', ms: 0, timedOut: false, ...res };
  }

  /** The ip -batch lines of every call, flattened, in order. */
  batchLines(): string[] {
    return this.calls.flatMap((c) => (c.argv.includes('-batch') ? c.input.trim().split('\n') : []));
  }
}

export class FakeSystem implements NodeSystem {
  sysctls = new Map<string, string>();
  files = new Map<string, { content: string; mode: number }>();
  /** what the `path` query finds, by path */
  paths = new Map<string, PathInfo>();
  /** operstate by link; a link without an entry is up */
  oper = new Map<string, string>();
  constructor(
    public links: string[] = ['lo'],
    public netns: Set<string> = new Set(),
  ) {}

  linkNames(): string[] {
    return [...this.links];
  }
  /** neighbour entries by device */
  neigh = new Map<string, NeighbourEntry[]>();
  neighbours(dev: string): NeighbourEntry[] {
    return this.neigh.get(dev) ?? [];
  }
  readSysctl(key: string): string | null {
    return this.sysctls.get(key) ?? null;
  }
  writeSysctl(key: string, value: string): void {
    this.sysctls.set(key, value);
  }
  operState(link: string): string | null {
    return this.oper.get(link) ?? 'up';
  }
  readFile(path: string): string | null {
    return this.files.get(path)?.content ?? null;
  }
  writeFile(path: string, content: string, mode: number): void {
    this.files.set(path, { content, mode });
  }
  /** link indexes the fake answers in-process; others need a process (null) */
  indexes = new Map<string, number>();
  ifindex(link: string): number | null {
    return this.indexes.get(link) ?? null;
  }
  statPath(path: string): PathInfo | null {
    return this.paths.get(path) ?? (this.files.has(path) ? { type: 'file', fs: 'ef53' } : null);
  }
  nsExists(ns: string): boolean {
    return ns === 'host' || this.netns.has(ns);
  }
}

/** An ip -batch failure at (1-based) line N, the way iproute2 reports it. */
export function batchFailure(line: number, message = 'RTNETLINK answers: File exists'): Partial<RunResult> {
  return { exitCode: 1, stderr: `${message}\nCommand failed -:${line}\n` };
}
