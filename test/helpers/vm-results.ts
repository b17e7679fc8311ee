// Reading what VM jobs report ("RESULT key value" lines, see vm-lab.sh), and running a plan's
// probes there: a script that runs each probe's query in the node (as CHECK would) and the
// steps whose probe does not hold on what it reported.
import assert from 'node:assert/strict';
import { HOST, type Step } from '../../model/plan.ts';
import { holds } from '../../planner/predicate.ts';
import { shellQuote } from '../../planner/render.ts';
import { inNetnsArgv } from '../../lib/netns.ts';
import { runJobsInVm, type VmJob, type VmJobResult, type VmRun } from './vm.ts';

export type VmResults = Map<string, string>;

export function vmResults(j: VmJobResult): VmResults {
  const m = new Map<string, string>();
  for (const line of j.output.split('\n')) {
    const r = /^RESULT (\S+) ?(.*)$/.exec(line);
    if (r) m.set(r[1]!, r[2]!);
  }
  return m;
}

export function resultText(r: VmResults, key: string): string {
  const v = r.get(key);
  assert.ok(v !== undefined, `no result ${key}`);
  return v;
}

/** The first element of a JSON array result (what `ip -j … show dev X` prints). */
export function resultJson(r: VmResults, key: string): Record<string, any> {
  return JSON.parse(resultText(r, key))[0];
}

type Diagnostic = { diagnostic(m: string): void };

/** One boot running `jobs` (call boot() in before()), and each job's results for the tests. */
export function vmBoot(jobs: VmJob[]) {
  let run: VmRun | null = null;
  const byName = new Map<string, VmJobResult>();
  return {
    async boot(): Promise<void> {
      run = await runJobsInVm(jobs);
      for (const j of run.jobs) byName.set(j.name, j);
    },
    get run(): VmRun {
      assert.ok(run, 'the VM did not run');
      return run;
    },
    /** The guest came up with its modules and every job ran to its end marker. */
    assertRanAll(t: Diagnostic): void {
      const r = this.run;
      t.diagnostic(`kernel ${r.kernelVersion}; ready after ${r.bootMs} ms (guest uptime ${r.guestReadyS} s); whole run ${r.totalMs} ms`);
      assert.ok(r.bootMs > 0, `the guest never reported ready:\n${r.console.slice(-3000)}`);
      assert.deepEqual(r.moduleFailures, []);
      assert.deepEqual(r.jobs.map((j) => j.exitCode !== null), jobs.map(() => true), r.console.slice(-3000));
    },
    /** A job's results, after checking it ran to the end; `log` (its output) goes in every failure message. */
    scenario(name: string, t: Diagnostic): { r: VmResults; log: string } {
      const j = byName.get(name)!;
      t.diagnostic(`${name}: ${j.ms} ms in the VM`);
      const log = `\n--- ${name} output ---\n${j.output}\n---`;
      assert.equal(j.exitCode, 0, `${name} exited ${j.exitCode}${j.timedOut ? ' (time limit)' : ''}${log}`);
      return { r: vmResults(j), log };
    },
  };
}

/** A script (run in the node, like the plugin) that runs every probe of `steps` and reports its
 *  exit status and output as `<tag>.<i>.rc` / `<tag>.<i>.out` (vm-lab.sh's `probe`). */
export function probeScript(steps: Step[], nsenter: string, tag: string): string {
  const lines = steps.filter((s) => s.probe).map((s, i) => {
    const p = s.probe!;
    assert.ok(p.mech !== 'file' && p.mech !== 'path', `${s.id}: a ${p.mech} probe cannot run in the VM`);
    const argv = p.ns === HOST ? p.argv : inNetnsArgv(nsenter, p.ns, p.argv);
    return `probe ${tag}.${i} ${argv.map(shellQuote).join(' ')}`;
  });
  return ['#!/bin/sh', 'set -eu', '. ./lab.sh', ...lines].join('\n') + '\n';
}

/** Steps whose probe does not hold on what the VM reported under `tag`. */
export function failingProbes(r: VmResults, steps: Step[], tag: string): string[] {
  return steps.filter((s) => s.probe).flatMap((s, i) => {
    const stdout = resultText(r, `${tag}.${i}.out`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout);
    } catch { /* not JSON: JSON predicates see nothing */ }
    return holds(s.probe!.expect, { exitCode: Number(resultText(r, `${tag}.${i}.rc`)), stdout, json: parsed }) ? [] : [s.id];
  });
}
