// The emulated-VM harness itself (test/helpers/vm.ts): exit codes and output come back per
// job, a job over its limit is killed and the next one still runs, jobs start from a clean
// guest, and a boot over its own limit is killed from the host.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { runInVm, runJobsInVm, vmSkipReason, type VmRun } from '../helpers/vm.ts';

const skip = vmSkipReason() ?? undefined;

describe('emulated VM harness', { skip }, () => {
  let run: VmRun;

  before(async () => {
    run = await runJobsInVm([
      // Leaves a named netns, a running process, a link and a scratch file behind.
      { name: 'first', script: 'ip netns add leftover\nip link add tcx0 type veth peer name tcx1\nsleep 600 &\necho data > /tmp/scratch\necho "to stderr" >&2\nprintf "no newline"\nexit 3' },
      { name: 'second', script: 'set -eu\nip netns list | wc -l\nip -o link show | wc -l\nps -o comm | grep -c "^sleep$" || true\nls /tmp | wc -l\nreadlink /bin/sh\ncat /proc/sys/kernel/osrelease' },
      { name: 'slow', script: 'echo started\nsleep 30\necho finished', timeoutMs: 2000 },
      { name: 'after-slow', script: 'echo still running' },
    ]);
  });

  it('reports each job\'s exit code and its output, stderr included', () => {
    const [first] = run.jobs;
    assert.equal(first!.exitCode, 3);
    assert.equal(first!.output, 'to stderr\nno newline');
  });

  it('starts every job in a fresh netns with no process, netns or /tmp file of the one before', () => {
    const second = run.jobs[1]!;
    assert.equal(second.exitCode, 0, second.output);
    // 0 named netns; lo and the ipip module's tunl0 only; no sleep; empty /tmp; dash as sh; the kernel
    const [netns, links, sleeps, tmp, sh, release] = second.output.trim().split('\n').map((l) => l.trim());
    assert.deepEqual([netns, links, sleeps, tmp], ['0', '2', '0', '0'], second.output);
    assert.match(sh!, /dash$/);
    assert.equal(release, run.kernelVersion);
  });

  it('kills a job at its limit, keeps what it printed, and goes on with the next job', () => {
    const slow = run.jobs[2]!;
    assert.equal(slow.timedOut, true);
    assert.equal(slow.exitCode, 137);
    assert.match(slow.output, /^started/);
    assert.doesNotMatch(slow.output, /finished/);
    assert.ok(slow.ms < 15_000, `${slow.ms} ms`);
    assert.equal(run.jobs[3]!.exitCode, 0);
    assert.equal(run.jobs[3]!.output, 'still running');
  });

  it('powers the guest off at the end', () => {
    assert.match(run.console, /@@\w+ done/);
    assert.equal(run.qemuExit, 'exited 0');
  });

  it('kills qemu when the whole boot exceeds its limit; unfinished jobs have no exit code', async () => {
    const started = Date.now();
    const r = await runJobsInVm([{ name: 'never', script: 'true' }], { timeoutMs: 500 });
    assert.ok(Date.now() - started < 20_000);
    assert.equal(r.jobs[0]!.exitCode, null);
    assert.equal(r.qemuExit, 'killed (SIGKILL)');
    assert.ok(!existsSync(`/proc/${r.qemuPid}`), 'qemu is gone');
  });

  it('runInVm: one script, its exit code and output', async () => {
    const r = await runInVm('ip -j link show dev lo >/dev/null && echo ok; exit 4');
    assert.deepEqual(r, { exitCode: 4, output: 'ok' });
  });
});
