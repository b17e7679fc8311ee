// The executor's view of a simulated node from outside it: a runner that starts every command
// inside the node's netns (nsenter --net, which keeps the mount namespace and so bpffs), and a
// NodeSystem that reads the node's links and sysctls through it. With these, a test drives the
// real Executor and the modes' planners against a node netns it made, as the plugin and the
// agent do from inside one.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { realSystem, type NodeSystem } from '../../executor/system.ts';
import type { Runner, RunOptions, RunResult } from '../../executor/runner.ts';
import { NETNS_DIR, toolPath } from './netns.ts';

export function nodeRunner(ns: string): Runner & { spawned: number } {
  const nsenter = toolPath('nsenter') ?? '/usr/bin/nsenter';
  const runner = {
    spawned: 0,
    async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
      runner.spawned++;
      const started = Date.now();
      const r = spawnSync(nsenter, [`--net=${join(NETNS_DIR, ns)}`, '--', ...argv], {
        input: opts.input ?? '', encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
      });
      return { argv, exitCode: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ms: Date.now() - started, timedOut: false };
    },
  };
  return runner;
}

export function nodeSystem(ns: string): NodeSystem {
  const run = (argv: string[]) => spawnSync(toolPath('nsenter') ?? 'nsenter', [`--net=${join(NETNS_DIR, ns)}`, '--', ...argv], { encoding: 'utf8' });
  return {
    ...realSystem,
    linkNames: () => (JSON.parse(run(['ip', '-j', 'link', 'show']).stdout || '[]') as { ifname: string }[]).map((l) => l.ifname),
    readSysctl(key) {
      const r = run(['sysctl', '-n', '-e', key]);
      return r.status === 0 && r.stdout !== '' ? r.stdout.trim() : null;
    },
    writeSysctl(key, value) {
      if (run(['sysctl', '-q', '-w', `${key}=${value}`]).status !== 0) throw new Error(`sysctl ${key}=${value} failed in ${ns}`);
    },
    operState: () => null,
    ifindex: () => null,
  };
}
