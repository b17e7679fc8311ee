// Crash safety of ADD: the plugin is SIGKILLed at every point of its plan (watched through its
// journal), then a DEL must bring the node back to exactly where it was. No fault hooks: the
// kill comes from outside, as the kernel's OOM killer or a runtime timeout would deliver it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { watch, readdirSync, readFileSync, existsSync, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { rootSkipReason, uniquePrefix, treeSnapshot, pluginArgv, pluginEnv, type TestNode } from '../helpers/netns.ts';
import {
  Scope, cni, show, settledNodeState, linkNames, reservations, readJournal, journalFile, journalDirOf, networkOf,
  type JournalView,
} from '../helpers/e2e.ts';
import { hostVethName } from '../../planner/names.ts';
import { uplinkNode } from '../helpers/uplink.ts';
import { bpfSkipReason, vxlanTestNode } from '../helpers/bpf.ts';

const skip = rootSkipReason() ?? undefined;
const bpfSkip = bpfSkipReason(['ethtool', 'iptables', 'mv', 'mkdir', 'rm']) ?? undefined;
const CURSOR = 'last_reserved_ip.0';

interface Before {
  node: Record<string, unknown>;
  /** what the mode keeps beyond the kernel's links, routes and rules (vxlan: map entries, filters) */
  mode: unknown;
  /** file names under the state dir (contents are journals: long, and names say enough) */
  state: string[];
  ipam: Record<string, string>;
}

/** The IPAM tree minus the cursor (written in place: no temp file a kill could leave). */
function ipamTree(node: TestNode): Record<string, string> {
  const out = treeSnapshot(node.ipamDir);
  delete out[`/${networkOf(node)}/${CURSOR}`];
  return out;
}

type ModeState = () => unknown;
const NO_MODE_STATE: ModeState = () => null;

function snapshot(node: TestNode, modeState: ModeState = NO_MODE_STATE): Before {
  return { node: settledNodeState(node.name), mode: modeState(), state: Object.keys(treeSnapshot(node.stateDir)), ipam: ipamTree(node) };
}

function warmUp(scope: Scope, node: TestNode, config: Record<string, unknown>): void {
  const pod = scope.pod('w');
  const cid = `${scope.prefix}-warm`;
  for (const command of ['ADD', 'DEL']) {
    const r = cni(node, { command, containerId: cid, netns: pod.path, config });
    assert.equal(r.code, 0, `warm-up ${command}: ${show(r)}`);
  }
}

/** Step ids of the ADD plan for this attachment, from the operator's dry run in the node. */
function dryRunStepIds(node: TestNode, config: unknown, cid: string, netns: string): string[] {
  const argv = [...pluginArgv(node.name), 'plan', '--dry-run', '--format', 'json', '--container-id', cid, '--netns', netns];
  const r = spawnSync(argv[0]!, argv.slice(1), { input: JSON.stringify(config), env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, encoding: 'utf8' });
  assert.equal(r.status, 0, `plan --dry-run: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { steps: { id: string }[] }).steps.map((s) => s.id);
}

/** Processes (not yet reaped zombies aside) in a process group. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state ppid pgrp ...
      if (Number(f[2]) === pgid && f[0] !== 'Z') out.push(Number(d));
    } catch { /* exited meanwhile */ }
  }
  return out;
}

interface Kill {
  pid: number;
  /** false: the plugin finished before the trigger fired */
  killed: boolean;
}

/**
 * Starts an ADD as its own process group (nsenter execs node, so the pid is the plugin's) and
 * SIGKILLs the plugin as soon as `trigger` holds, checked on every change in `watchDirs` and on
 * a 1 ms poll. Children it started are not killed: like after a real crash they run to their end,
 * and this returns once they have.
 */
async function addKilledWhen(node: TestNode, call: { cid: string; netns: string; config: unknown }, watchDirs: string[],
  trigger: () => boolean, track: (c: ChildProcess) => void, onSpawn: (pid: number) => void = () => {}): Promise<Kill> {
  const argv = pluginArgv(node.name);
  const child = spawn(argv[0]!, argv.slice(1), {
    env: pluginEnv({ command: 'ADD', containerId: call.cid, netns: call.netns, config: call.config, nodeNs: node.name }),
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  const pid = child.pid!;
  track(child);
  onSpawn(pid);
  child.stdin!.end(JSON.stringify(call.config));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const killed = await new Promise<boolean>((resolve) => {
    let done = false;
    const watchers: FSWatcher[] = [];
    const finish = (k: boolean) => {
      if (done) return;
      done = true;
      clearInterval(poll);
      for (const w of watchers) w.close();
      resolve(k);
    };
    const check = () => {
      if (done) return;
      if (child.exitCode !== null || child.signalCode !== null) return finish(false);
      if (!trigger()) return;
      try {
        process.kill(pid, 'SIGKILL');
        finish(true);
      } catch {
        finish(false); // already gone
      }
    };
    for (const d of watchDirs) watchers.push(watch(d, check));
    const poll = setInterval(check, 1);
    child.once('exit', () => finish(false));
    check();
  });
  await exited;
  const deadline = Date.now() + 10_000;
  while (groupMembers(pid).length > 0) {
    assert.ok(Date.now() < deadline, `children of the killed plugin still running: ${groupMembers(pid).join(' ')}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return { pid, killed };
}

/** A plugin left running by a failed test is killed first in teardown (defers run newest first). */
function killOnTeardown(scope: Scope, c: ChildProcess): void {
  scope.defer(() => {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
}

const LETTER: Record<string, string> = { pending: 'p', applied: 'a', skipped: 's', failed: 'f', unknown: 'u', undone: 'd' };

/** Where a kill landed, as the journal a later DEL reads records it: "applying aaaaaaasppp". */
function progress(j: JournalView | null): string {
  if (!j) return 'no journal';
  return `${j.state} ${j.plan.steps.map((s) => LETTER[j.steps[s.id]?.status ?? ''] ?? '?').join('')}`;
}

function assertRestored(node: TestNode, before: Before, cid: string, pod: { name: string }, where: string, modeState: ModeState = NO_MODE_STATE): void {
  assert.deepEqual(settledNodeState(node.name), before.node, `${where}: node as before the ADD`);
  assert.deepEqual(modeState(), before.mode, `${where}: the mode's node state as before the ADD`);
  assert.deepEqual(Object.keys(treeSnapshot(node.stateDir)), before.state, `${where}: no journal, lock or temp file left`);
  assert.deepEqual(ipamTree(node), before.ipam, `${where}: IPAM dir as before (cursor aside)`);
  assert.ok(!Object.values(reservations(node)).includes(`${cid}/eth0`), `${where}: no reservation left`);
  assert.ok(!linkNames(node.name).includes(hostVethName(cid, 'eth0')), `${where}: no host veth left`);
  assert.deepEqual(linkNames(pod.name), ['lo'], `${where}: no link left in the pod (under any name)`);
}

/** Kills an ADD after each step of its plan in turn (and once as soon as its journal exists),
 *  then DELs it: the node must be as before every time. */
async function killAtEveryStep(t: TestContext, scope: Scope, node: TestNode, config: Record<string, unknown>, minSteps: number, modeState: ModeState = NO_MODE_STATE): Promise<void> {
  warmUp(scope, node, config);
  const before = snapshot(node, modeState);
  const journalDir = journalDirOf(node);

  const stepCount = dryRunStepIds(node, config, 'probe', '/var/run/netns/probe').length;
  assert.ok(stepCount >= minSteps, `plan has ${stepCount} steps`);
  const landed = new Map<string, string[]>();
  // -1: as soon as the journal exists (killed before any step finished).
  for (let k = -1; k < stepCount; k++) {
    const cid = `${scope.prefix}-k${k + 1}`;
    const pod = scope.pod(`k${k + 1}`);
    const ids = dryRunStepIds(node, config, cid, pod.path);
    const where = k < 0 ? 'journal created' : `step ${k} (${ids[k]}) done`;
    const trigger = () => {
      const j = readJournal(node, cid);
      if (!j) return false;
      if (k < 0) return true;
      const s = j.steps[j.plan.steps[k]!.id]?.status;
      return s === 'applied' || s === 'skipped';
    };
    const kill = await addKilledWhen(node, { cid, netns: pod.path, config }, [journalDir], trigger, (c) => killOnTeardown(scope, c));
    const j = readJournal(node, cid);
    assert.ok(j, `${where}: the journal exists`);
    assert.deepEqual(j.plan.steps.map((s) => s.id), ids, `${where}: the ADD ran the plan the dry run showed`);
    const at = kill.killed ? progress(j) : 'finished before the kill';
    landed.set(at, [...(landed.get(at) ?? []), where]);

    const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config });
    assert.equal(del.code, 0, `${where}: DEL after the kill (landed at "${at}"): ${show(del)}`);
    assertRestored(node, before, cid, pod, `${where}, landed at "${at}"`, modeState);
  }
  t.diagnostic(`kills landed at: ${[...landed].map(([at, ks]) => `[${at}] <- ${ks.join(', ')}`).join('; ')}`);
  const midPlan = [...landed.keys()].filter((at) => at.startsWith('applying'));
  assert.ok(midPlan.length >= 3, `kills must land at several points of the plan, got: ${[...landed.keys()].join(' | ')}`);
}

test('SIGKILL at every step of ADD, then DEL: the node is as before', { skip, timeout: 150_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('kk'));
  const node = scope.node();
  // The iptables step makes one more unit to land in.
  await killAtEveryStep(t, scope, node, node.config({ ipMasq: true }), 10);
});

test('ipip: SIGKILL at every step of ADD, then DEL: the node is as before', { skip, timeout: 150_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('kp'));
  const node = scope.node();
  // Host-side sysctls and routes of the pod veth, a neighbour entry in the pod, and masquerade.
  await killAtEveryStep(t, scope, node, node.config({ mode: 'ipip', ipMasq: true, bgp: { ipipMode: 'always' } }), 14);
});

test('macvlan: SIGKILL at every step of ADD, then DEL: the node is as before, nothing left in the pod', { skip, timeout: 150_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('km'));
  const { node, config } = uplinkNode(scope);
  await killAtEveryStep(t, scope, node, config(), 6);
});

test('vxlan: SIGKILL at every step of ADD, then DEL: the node as before, endpoint entries and filters included', { skip: bpfSkip, timeout: 150_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('kx'));
  const { node, config, bpfState } = vxlanTestNode(scope);
  // The warm-up ADD sets the node up (device, maps, programs: node state DEL keeps).
  await killAtEveryStep(t, scope, node, config({ ipMasq: true }), 20, bpfState);
});

test('SIGKILL right after the IPAM reservation, before the journal: DEL still releases the address', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('ki'));
  const node = scope.node();
  const config = node.config({ ipMasq: true });
  warmUp(scope, node, config);
  const before = snapshot(node);
  const ipamNetDir = join(node.ipamDir, networkOf(node));
  // The kill comes when the reservation file appears; the journal is written a few ms later.
  // A kill that lands after it is no test of this window: that attempt is cleaned up by DEL
  // and another made. (Journal temp files are created exclusively, so a FIFO planted at the
  // temp name no longer holds the plugin there.)
  let cid = '';
  let pod = { name: '', path: '' };
  let kill = { pid: 0, killed: false };
  for (let attempt = 0; attempt < 8; attempt++) {
    cid = `${scope.prefix}-i${attempt}`;
    pod = scope.pod(`i${attempt}`);
    const c = cid;
    kill = await addKilledWhen(node, { cid, netns: pod.path, config }, [ipamNetDir],
      () => Object.values(reservations(node)).includes(`${c}/eth0`),
      (ch) => killOnTeardown(scope, ch));
    if (kill.killed && !existsSync(journalFile(node, cid))) break;
    const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config });
    assert.equal(del.code, 0, `DEL of attempt ${attempt}: ${show(del)}`);
  }
  const journal = journalFile(node, cid);
  assert.ok(kill.killed, 'the plugin was killed');
  assert.equal(existsSync(journal), false, 'killed before the journal was written');
  assert.equal(Object.values(reservations(node)).filter((o) => o === `${cid}/eth0`).length, 1, 'the address is reserved');
  const added = Object.entries(treeSnapshot(node.stateDir)).filter(([f]) => !before.state.includes(f));
  assert.deepEqual(added.map(([f, pid]) => [f.endsWith('.lock'), pid]), [[true, String(kill.pid)]], 'only the dead lock is left in the state dir');

  const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config });
  assert.equal(del.code, 0, `DEL: ${show(del)}`);
  assertRestored(node, before, cid, pod, 'killed after the reservation');
});

test('SIGKILL at every step of ADD and while its journal is written, then one GC with an empty list: nothing left', { skip, timeout: 180_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('kg'));
  const node = scope.node();
  const config = node.config({ ipMasq: true });
  warmUp(scope, node, config);
  const before = snapshot(node);
  const journalDir = journalDirOf(node);
  const stepCount = dryRunStepIds(node, config, 'probe', '/var/run/netns/probe').length;
  const killed: { cid: string; pod: { name: string }; where: string }[] = [];
  const left = { journal: 0, lock: 0, temp: 0, reservation: 0 };
  const stateNames = () => Object.keys(treeSnapshot(node.stateDir));
  // -2: as soon as a journal temp file exists (killed mid-write); -1: as soon as the journal
  // exists; k: once step k is done.
  for (let k = -2; k < stepCount; k++) {
    const cid = `${scope.prefix}-g${k + 2}`;
    const pod = scope.pod(`g${k + 2}`);
    const trigger = () => {
      if (k === -2) return stateNames().some((f) => f.includes(`${cid}@eth0.jsonl.tmp-`));
      const j = readJournal(node, cid);
      if (!j) return false;
      if (k < 0) return true;
      const s = j.steps[j.plan.steps[k]!.id]?.status;
      return s === 'applied' || s === 'skipped';
    };
    const kill = await addKilledWhen(node, { cid, netns: pod.path, config }, [journalDir, node.stateDir], trigger, (c) => killOnTeardown(scope, c));
    const names = stateNames().filter((f) => f.includes(`${cid}@eth0`));
    const where = `${k === -2 ? 'journal being written' : k === -1 ? 'journal created' : `step ${k} done`}${kill.killed ? '' : ' (finished first)'}`;
    if (names.some((f) => f.endsWith(`${cid}@eth0.jsonl`))) left.journal++;
    if (names.some((f) => f.endsWith('.lock'))) left.lock++;
    if (names.some((f) => f.includes('.tmp-'))) left.temp++;
    if (Object.values(reservations(node)).includes(`${cid}/eth0`)) left.reservation++;
    killed.push({ cid, pod, where });
  }
  // Another kill between the reservation and the journal: an address without a journal.
  {
    const cid = `${scope.prefix}-gi`;
    const pod = scope.pod('gi');
    await addKilledWhen(node, { cid, netns: pod.path, config }, [join(node.ipamDir, networkOf(node))],
      () => Object.values(reservations(node)).includes(`${cid}/eth0`), (c) => killOnTeardown(scope, c));
    killed.push({ cid, pod, where: 'after the reservation' });
  }
  t.diagnostic(`${killed.length} kill points; left before GC: journals ${left.journal}, locks ${left.lock}, temp files ${left.temp}, reservations ${left.reservation}`);
  assert.ok(left.lock > 0, 'kills left locks of dead processes behind');
  await new Promise((r) => setTimeout(r, 1100)); // GC's grace for files of dead processes
  const gc = cni(node, { command: 'GC', config: { ...config, 'cni.dev/valid-attachments': [] } });
  assert.equal(gc.code, 0, `GC: ${show(gc)}`);
  for (const k of killed) assertRestored(node, before, k.cid, k.pod, `GC after a kill at ${k.where}`);
});
