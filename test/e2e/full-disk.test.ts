// Disk failures never hand out an address twice: the state and IPAM directories live on a small
// tmpfs the test mounts and fills to every level that matters, and a read-only remount. Whatever
// fails (the lock, the reservation, the cursor, the journal's first write or an append), ADD
// leaves a working pod or nothing at all; DEL removes the pod's network even on a full disk;
// STATUS notices a state directory that cannot take a write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync, truncateSync, readdirSync, readFileSync } from 'node:fs';
import { join, dirname, basename } from 'node:path';
import { tmpdir } from 'node:os';
import { rootSkipReason, uniquePrefix, sh, treeSnapshot, type TestNode } from '../helpers/netns.ts';
import { Scope, cni, show, linkNames, podLink, reservations, readJournal, journalFile } from '../helpers/e2e.ts';
import { hostVethName } from '../../planner/names.ts';
import { Code } from '../../model/errors.ts';

const skip = rootSkipReason(['mount', 'umount']) ?? undefined;
const PAGE = 4096;
const TMPFS_PAGES = 24;

interface Disk {
  dir: string;
  /** leaves exactly `pages` free pages (or none with 0) */
  leave(pages: number): void;
  /** frees what leave() took */
  free(): void;
  remount(mode: 'ro' | 'rw'): void;
}

/** A tmpfs of TMPFS_PAGES pages, unmounted in teardown. */
function smallDisk(scope: Scope): Disk {
  const dir = mkdtempSync(join(tmpdir(), `${scope.prefix}-fs-`));
  sh(['mount', '-t', 'tmpfs', '-o', `size=${TMPFS_PAGES * PAGE},mode=0700`, `${scope.prefix}fs`, dir]);
  scope.defer(() => {
    if (sh(['umount', dir], { allowFail: true }).code !== 0) sh(['umount', '-l', dir], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  });
  const filler = join(dir, 'filler');
  const freePages = () => {
    const s = statfsSync(dir);
    return Math.floor((s.bavail * s.bsize) / PAGE);
  };
  return {
    dir,
    leave(pages) {
      writeFileSync(filler, '');
      writeFileSync(filler, Buffer.alloc(Math.max(0, freePages() - pages) * PAGE));
      assert.equal(freePages(), pages, 'the filler leaves the wanted room');
    },
    free() {
      truncateSync(filler, 0);
    },
    remount(mode) {
      sh(['mount', '-o', `remount,${mode}`, dir]);
    },
  };
}

/** A node whose state and IPAM directories are on the small disk. */
function nodeOnDisk(scope: Scope, disk: Disk): { node: TestNode; config: Record<string, unknown> } {
  const node = scope.node();
  const stateDir = join(disk.dir, 'state');
  const ipamDir = join(disk.dir, 'ipam');
  mkdirSync(stateDir, { mode: 0o700 });
  mkdirSync(ipamDir, { mode: 0o755 });
  const config = node.config({ stateDir, ipam: { dataDir: ipamDir } });
  return { node: { ...node, stateDir, ipamDir }, config };
}

/** The address an interface holds in a pod, if any. */
function podAddress(podNs: string): string | null {
  return podLink(podNs)?.addr_info.find((a) => a.family === 'inet')?.local ?? null;
}

/** Files a failed or finished call may not leave: temp files, reservation temp files, locks. */
function strays(node: TestNode): string[] {
  return Object.keys(treeSnapshot(node.stateDir)).concat(Object.keys(treeSnapshot(node.ipamDir)))
    .filter((f) => /\.tmp-|\.reserving-|\.lock$/.test(f));
}

test('ADD with the state and IPAM filesystem full at every level: a working pod or nothing, never an address in use handed out again', { skip, timeout: 120_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('fd'));
  const disk = smallDisk(scope);
  const { node, config } = nodeOnDisk(scope, disk);
  const warm = scope.pod('w');
  const warmAdd = cni(node, { command: 'ADD', containerId: `${scope.prefix}-w`, netns: warm.path, config });
  assert.equal(warmAdd.code, 0, `warm-up ADD with room: ${show(warmAdd)}`);

  const outcomes: string[] = [];
  const live: { cid: string; pod: string }[] = [];
  for (let pages = 0; pages <= 6; pages++) {
    const cid = `${scope.prefix}-f${pages}`;
    const pod = scope.pod(`f${pages}`);
    disk.leave(pages);
    const add = cni(node, { command: 'ADD', containerId: cid, netns: pod.path, config });
    disk.free();
    const where = `${pages} free page(s)`;
    outcomes.push(`${pages}:${add.code === 0 ? 'ok' : add.json?.code}`);
    assert.ok(add.code === 0 || add.json !== null, `${where}: one document: ${show(add)}`);
    assert.notEqual(add.json?.code, Code.Internal, `${where}: a disk failure is not an internal error: ${show(add)}`);
    const ip = podAddress(pod.name);
    if (add.code === 0) {
      assert.equal(readJournal(node, cid)?.state, 'applied', `${where}: a successful ADD has its journal in state applied`);
      const check = cni(node, { command: 'CHECK', containerId: cid, netns: pod.path, config: { ...config, prevResult: add.json } });
      assert.equal(check.code, 0, `${where}: CHECK of a successful ADD: ${show(check)}`);
      live.push({ cid, pod: pod.name });
    } else if (add.json?.code !== Code.RollbackIncomplete) {
      assert.equal(ip, null, `${where}: a failed ADD (code ${add.json?.code}) leaves no address in the pod`);
      assert.ok(!linkNames(node.name).includes(hostVethName(cid, 'eth0')), `${where}: no host veth left`);
      assert.ok(!Object.values(reservations(node)).includes(`${cid}/eth0`), `${where}: the address went back to the pool`);
    }
    assert.deepEqual(strays(node), [], `${where}: no temp file or lock left: ${show(add)}`);
    // The invariant that matters: every address configured in a pod is reserved for that pod.
    const owned = reservations(node);
    for (const p of [{ cid: `${scope.prefix}-w`, pod: warm.name }, ...live, { cid, pod: pod.name }]) {
      const a = podAddress(p.pod);
      if (a) assert.equal(owned[a], `${p.cid}/eth0`, `${where}: ${a} is configured in ${p.pod} and reserved for it`);
    }
    // The failed one is DELeted as a runtime would; the disk has room again.
    if (add.code !== 0) {
      const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config });
      assert.equal(del.code, 0, `${where}: DEL after the failed ADD: ${show(del)}`);
    }
  }
  t.diagnostic(`ADD outcome by free pages: ${outcomes.join(' ')}`);
  assert.ok(outcomes.some((o) => o.endsWith(':ok')), 'with enough room ADD succeeds');
  assert.ok(outcomes.filter((o) => !o.endsWith(':ok')).length >= 2, 'several levels fail at different writes');
});

test('DEL on a full state filesystem removes the pod network, its address and its journal', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('fe'));
  const disk = smallDisk(scope);
  const { node, config } = nodeOnDisk(scope, disk);
  const pod = scope.pod('d');
  const cid = `${scope.prefix}-d`;
  const add = cni(node, { command: 'ADD', containerId: cid, netns: pod.path, config });
  assert.equal(add.code, 0, show(add));
  disk.leave(0);
  const del = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config });
  assert.equal(del.code, 0, `DEL on a full disk: ${show(del)}`);
  assert.equal(podLink(pod.name), null, 'no eth0 left in the pod');
  assert.ok(!linkNames(node.name).includes(hostVethName(cid, 'eth0')), 'no host veth left');
  assert.deepEqual(reservations(node), {}, 'the address is released');
  assert.equal(readJournal(node, cid), null, 'the journal is gone');
  assert.deepEqual(strays(node), [], 'no lock or temp file left');
  const again = cni(node, { command: 'DEL', containerId: cid, netns: pod.path, config });
  assert.equal(again.code, 0, `a second DEL on the full disk: ${show(again)}`);
});

test('STATUS on a full state filesystem is code 50 naming the state dir; with room it is ready', { skip, timeout: 30_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('fs'));
  const disk = smallDisk(scope);
  const { node, config } = nodeOnDisk(scope, disk);
  const ready = cni(node, { command: 'STATUS', config });
  assert.equal(ready.code, 0, show(ready));
  disk.leave(0);
  const full = cni(node, { command: 'STATUS', config });
  assert.equal(full.code, 1, show(full));
  assert.equal(full.json?.code, Code.NotReady, show(full));
  assert.match(String(full.json?.details), /state dir/, show(full));
  assert.deepEqual(readdirSync(node.stateDir).filter((f) => f !== 'locks'), [], 'the write test leaves nothing');
});

test('read-only state filesystem: ADD refused with code 5 leaving nothing, STATUS 50, DEL removes the network and says the journal is left', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('fr'));
  const disk = smallDisk(scope);
  const { node, config: base } = nodeOnDisk(scope, disk);
  // The IPAM directory on another (writable) filesystem: only the state dir is read-only.
  const ipamDir = mkdtempSync(join(tmpdir(), `${scope.prefix}-ipam-`));
  scope.defer(() => rmSync(ipamDir, { recursive: true, force: true }));
  const config = { ...base, ipam: { dataDir: ipamDir } };
  const n = { ...node, ipamDir };
  const kept = scope.pod('k');
  const keptCid = `${scope.prefix}-k`;
  assert.equal(cni(n, { command: 'ADD', containerId: keptCid, netns: kept.path, config }).code, 0);
  disk.remount('ro');
  scope.defer(() => disk.remount('rw'));

  const pod = scope.pod('r');
  const cid = `${scope.prefix}-r`;
  const add = cni(n, { command: 'ADD', containerId: cid, netns: pod.path, config });
  assert.equal(add.json?.code, Code.IoFailure, `ADD on a read-only state dir: ${show(add)}`);
  assert.equal(podLink(pod.name), null, 'nothing configured in the pod');
  assert.ok(!Object.values(reservations(n)).includes(`${cid}/eth0`), 'no address kept');

  const status = cni(n, { command: 'STATUS', config });
  assert.equal(status.json?.code, Code.NotReady, `STATUS: ${show(status)}`);

  const del = cni(n, { command: 'DEL', containerId: keptCid, netns: kept.path, config });
  assert.equal(del.json?.code, Code.IoFailure, `DEL with a journal it cannot remove: ${show(del)}`);
  assert.equal(podLink(kept.name), null, 'the pod network is removed all the same');
  assert.ok(!linkNames(n.name).includes(hostVethName(keptCid, 'eth0')), 'no host veth left');
  assert.ok(!Object.values(reservations(n)).includes(`${keptCid}/eth0`), 'the address is released');
  disk.remount('rw');
  const retry = cni(n, { command: 'DEL', containerId: keptCid, netns: kept.path, config });
  assert.equal(retry.code, 0, `the runtime's retry once the disk is writable: ${show(retry)}`);
  assert.equal(readJournal(n, keptCid), null, 'journal gone after the retry');
});

test('the disk fills up between the journal\'s first write and an append: ADD rolls back before the address goes back', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('fa'));
  const disk = smallDisk(scope);
  const { node, config } = nodeOnDisk(scope, disk);
  // Measure a journal: its first line (the record) and what the appends add. The first ADD on a
  // node also creates the bridge and sets node sysctls (journalled as applied); later ADDs find
  // them in place (skipped), so the journal of a second ADD is the one to measure.
  const first0 = scope.pod('f');
  assert.equal(cni(node, { command: 'ADD', containerId: `${scope.prefix}-f`, netns: first0.path, config }).code, 0);
  const trial = scope.pod('t');
  const trialCid = `${scope.prefix}-t`;
  assert.equal(cni(node, { command: 'ADD', containerId: trialCid, netns: trial.path, config }).code, 0);
  const text = readFileSync(journalFile(node, trialCid), 'utf8');
  const first = Buffer.byteLength(text.split('\n')[0]! + '\n');
  const appended = Buffer.byteLength(text) - first;
  // The pod's netns path recurs in many steps: "./" segments in it (the same file) move the
  // record's end by that many bytes each.
  const pod = scope.pod('a');
  const perSegment = 2 * (text.split('\n')[0]!.split(trial.path).length - 1);
  assert.equal(cni(node, { command: 'DEL', containerId: trialCid, netns: trial.path, config }).code, 0);
  const recordWith = (k: number) => first + perSegment * k + (pod.path.length - trial.path.length) * perSegment / 2;
  // A path whose record ends so close to a page boundary that the appends need a new page.
  let k = -1;
  for (let d = 0; d < 400 && k < 0; d++) {
    const room = PAGE - (recordWith(d) % PAGE || PAGE);
    if (room > 64 && room < appended - 64) k = d;
  }
  assert.ok(k >= 0, `a path length puts the record's end near a page boundary (record ${first} B, appends ${appended} B)`);
  const netns = `${dirname(pod.path)}/${'./'.repeat(k)}${basename(pod.path)}`; // (join() would drop them)
  t.diagnostic(`record ${first} B, appends ${appended} B, ${perSegment} B per segment, k=${k}, netns ${netns}`);
  const cid = `${scope.prefix}-a`;
  disk.leave(Math.ceil(recordWith(k) / PAGE) + 1); // + the reservation file
  const add = cni(node, { command: 'ADD', containerId: cid, netns, config });
  disk.free();
  assert.equal(add.json?.code, Code.IoFailure, `the append fails: ${show(add)}`);
  assert.match(String(add.json?.details), /append.*rollback complete/, show(add));
  assert.equal(podLink(pod.name), null, 'the pod has no eth0: rolled back');
  assert.ok(!linkNames(node.name).includes(hostVethName(cid, 'eth0')), 'no host veth left');
  assert.ok(!Object.values(reservations(node)).includes(`${cid}/eth0`), 'the address is free again, and nothing uses it');
  assert.equal(readJournal(node, cid), null, 'no journal left (it could not be rewritten, so it was removed)');
  assert.deepEqual(strays(node), [], 'no temp file or lock left');
  // The next pod gets that address, and it is the only pod using it.
  const next = scope.pod('n');
  const nextAdd = cni(node, { command: 'ADD', containerId: `${scope.prefix}-n`, netns: next.path, config });
  assert.equal(nextAdd.code, 0, show(nextAdd));
});
