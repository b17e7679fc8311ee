import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, readdirSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { FileStore } from '../../ipam/file-store.ts';
import { parseIp } from '../../lib/ipv4.ts';
import { ROOT } from '../helpers/netns.ts';

const POOL = { first: parseIp('10.244.1.1')!, last: parseIp('10.244.1.254')!, gateway: parseIp('10.244.1.1')!, prefix: 24 };

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tcx-ipam-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('host-local layout: one file per IP holding "containerId\\r\\nifName", and a cursor', async (t) => {
  const dir = tempDir(t);
  const store = new FileStore(dir, 'net', POOL);
  const lease = await store.allocate({ containerId: 'abc', ifName: 'eth0' });
  assert.deepEqual(lease, { address: '10.244.1.2/24', gateway: '10.244.1.1' });
  assert.equal(readFileSync(join(dir, 'net', '10.244.1.2'), 'utf8'), 'abc\r\neth0');
  assert.equal(readFileSync(join(dir, 'net', 'last_reserved_ip.0'), 'utf8'), '10.244.1.2');
  assert.equal(statSync(join(dir, 'net', '10.244.1.2')).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(join(dir, 'net')).sort(), ['10.244.1.2', 'last_reserved_ip.0'], 'no temp file left');
});

test('release by hint, by owner scan, and never another attachment\'s address', async (t) => {
  const dir = tempDir(t);
  const store = new FileStore(dir, 'net', POOL);
  const a = await store.allocate({ containerId: 'a', ifName: 'eth0' });
  const b = await store.allocate({ containerId: 'b', ifName: 'eth0' });
  const aIp = a.address.split('/')[0]!;
  const bIp = b.address.split('/')[0]!;
  assert.deepEqual(await store.release({ containerId: 'a', ifName: 'eth0' }, bIp), [aIp], 'a wrong hint falls back to the scan');
  assert.deepEqual(await store.release({ containerId: 'a', ifName: 'eth0' }), [], 'twice is fine');
  assert.equal(await store.find({ containerId: 'b', ifName: 'eth0' }), bIp);
  assert.deepEqual(await store.release({ containerId: 'b', ifName: 'eth1' }), [], 'same container, other interface: untouched');
  assert.deepEqual(await store.release({ containerId: 'b', ifName: 'eth0' }, bIp), [bIp]);
});

test('gc keeps valid attachments, frees the rest and removes temp files of killed ADDs', async (t) => {
  const dir = tempDir(t);
  const store = new FileStore(dir, 'net', POOL);
  for (const c of ['a', 'b', 'c']) await store.allocate({ containerId: c, ifName: 'eth0' });
  writeFileSync(join(dir, 'net', '.reserving-deadbeefdeadbeef'), 'x\r\neth0');
  const freed = await store.gc([{ containerId: 'b', ifName: 'eth0' }]);
  assert.deepEqual(freed.sort(), ['10.244.1.2', '10.244.1.4']);
  assert.deepEqual(readdirSync(join(dir, 'net')).sort(), ['10.244.1.3', 'last_reserved_ip.0']);
});

test('gc with a grace period spares young reservations', async (t) => {
  const dir = tempDir(t);
  const store = new FileStore(dir, 'net', POOL);
  await store.allocate({ containerId: 'young', ifName: 'eth0' });
  assert.deepEqual(await store.gc([], 60_000), []);
  assert.deepEqual(await store.gc([]), ['10.244.1.2']);
});

test('status reports usage and exhaustion', async (t) => {
  const dir = tempDir(t);
  const small = { ...POOL, last: parseIp('10.244.1.3')! };
  const store = new FileStore(dir, 'net', small);
  assert.deepEqual(await store.status(), { ready: true, used: 0, free: 2 });
  await store.allocate({ containerId: 'a', ifName: 'eth0' });
  await store.allocate({ containerId: 'b', ifName: 'eth0' });
  const s = await store.status();
  assert.equal(s.ready, false);
  assert.match(s.reason!, /exhausted/);
});

test('concurrent allocations from 16 processes never share an address', async (t) => {
  const dir = tempDir(t);
  const script = `
    import { FileStore } from ${JSON.stringify(join(ROOT, 'ipam/file-store.ts'))};
    const [dir, id] = process.argv.slice(-2); // with -e there is no script path in argv
    const store = new FileStore(dir, 'net', ${JSON.stringify(POOL)});
    const out = [];
    for (let i = 0; i < 8; i++) out.push((await store.allocate({ containerId: id + '-' + i, ifName: 'eth0' })).address);
    process.stdout.write(JSON.stringify(out));`;
  const runOne = (id: number) =>
    new Promise<string[]>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dir, `p${id}`], { cwd: ROOT });
      let out = '';
      let err = '';
      child.stdout.on('data', (b) => (out += b));
      child.stderr.on('data', (b) => (err += b));
      child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(err))));
    });
  const all = (await Promise.all(Array.from({ length: 16 }, (_, i) => runOne(i)))).flat();
  assert.equal(all.length, 128);
  assert.equal(new Set(all).size, 128, 'every address handed out once');
  const files = readdirSync(join(dir, 'net')).filter((f) => parseIp(f) !== null);
  assert.equal(files.length, 128, 'one reservation file per address');
});
