// The BIRD supervisor with a real BIRD in a throwaway node namespace: checked, atomic, private
// writes; reloads only on change; restart after death with a growing backoff; stop; a BIRD
// left behind by an earlier agent; output kept off the agent's stdout; secrets kept out of logs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, readdirSync, readlinkSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { uniquePrefix } from '../helpers/netns.ts';
import { BgpLab, bgpSkipReason, waitFor, sleep, UNDERLAY_SUBNET, FAST_TIMERS, type SimNode } from '../helpers/bgp.ts';
import { BirdConfigInvalid, BirdSupervisor } from '../../agent/bird/supervisor.ts';
import { birdView } from '../../planner/bird/view.ts';
import { renderBirdConf } from '../../planner/bird/render.ts';
import { startDaemon, ProcessRunner } from '../../executor/runner.ts';
import { findTool } from '../../executor/facts.ts';
import { pidAlive } from '../../lib/process.ts';

const skip = bgpSkipReason();
const SECRET = 'Sup3r-secret';

describe('BIRD supervisor (real BIRD in a node namespace)', { skip, timeout: 60_000 }, () => {
  let lab: BgpLab;
  let node: SimNode;
  let conf: string;
  /** A configuration for this node alone, with an external peer whose password is SECRET. */
  const text = (extraPeer = false) => {
    const v = birdView({
      self: { name: node.name, underlayIp: node.underlayIp, underlaySubnet: UNDERLAY_SUBNET, blocks: node.blocks },
      nodes: [],
      bgp: { ipipMode: 'never', timers: FAST_TIMERS, externalPeers: [{ address: '198.18.0.40', asn: 65001, password: SECRET }, ...(extraPeer ? [{ address: '198.18.0.41', asn: 65001 }] : [])] },
    });
    return { text: renderBirdConf(v), secrets: v.secrets };
  };
  const logged = () => node.log.lines.join('\n');

  before(() => {
    lab = new BgpLab(uniquePrefix('bs'));
    node = lab.addNode(1);
    conf = join(node.dir, 'bird.conf');
  });
  after(() => lab?.close());

  it('writes a checked configuration, 0600 when it holds a password', async () => {
    const c = text();
    assert.equal(await node.sup.apply(c.text, c.secrets), 'written');
    assert.equal(readFileSync(conf, 'utf8'), c.text);
    assert.equal(statSync(conf).mode & 0o777, 0o600);
    assert.equal(await node.sup.apply(c.text, c.secrets), 'unchanged');
  });

  it('refuses what BIRD cannot parse: the file stays as it was, no temporary file, no secret in the error', async () => {
    const before = readFileSync(conf, 'utf8');
    // BIRD names the missing include in its error: the secret would be in the message.
    const broken = `include "/nonexistent/${SECRET}.conf";\n${before}`;
    await assert.rejects(node.sup.apply(broken, [SECRET]), (e: unknown) => e instanceof BirdConfigInvalid && e.message.includes('***') && !e.message.includes(SECRET));
    await assert.rejects(node.sup.apply('protocol nonsense {}\n'), BirdConfigInvalid);
    assert.equal(readFileSync(conf, 'utf8'), before);
    assert.deepEqual(readdirSync(node.dir).filter((f) => f.includes('.tmp-')), []);
    assert.ok(!logged().includes(SECRET), logged());
  });

  it('starts BIRD with its output in its log file, not on the agent\'s stdout', async () => {
    await node.sup.start();
    const pid = node.sup.pid!;
    assert.ok(pidAlive(pid));
    for (const fd of ['1', '2']) assert.equal(readlinkSync(`/proc/${pid}/fd/${fd}`), join(node.dir, 'bird.log'));
    assert.notEqual(readlinkSync(`/proc/${pid}/ns/net`), readlinkSync('/proc/self/ns/net'), 'BIRD runs in the node namespace');
    assert.deepEqual((await node.sup.birdc.bgpSessions()).map((s) => s.name), ['peer_198_18_0_40']);
  });

  it('reloads only when the text changed, and counts the reloads', async () => {
    const same = text();
    assert.equal(await node.sup.apply(same.text, same.secrets), 'unchanged');
    assert.equal(node.sup.reloads, 0);
    const more = text(true);
    assert.equal(await node.sup.apply(more.text, more.secrets), 'reloaded');
    assert.equal(node.sup.reloads, 1);
    assert.deepEqual((await node.sup.birdc.bgpSessions()).map((s) => s.name), ['peer_198_18_0_40', 'peer_198_18_0_41']);
    assert.equal(await node.sup.apply(more.text, more.secrets), 'unchanged');
    assert.equal(node.sup.reloads, 1);
    assert.equal(node.sup.status().reloads, 1);
  });

  it('starts BIRD again when it dies, waiting longer each time it dies young', async () => {
    for (let round = 1; round <= 2; round++) {
      const old = node.sup.pid!;
      process.kill(old, 'SIGKILL');
      await waitFor(() => node.sup.restarts === round && node.sup.pid !== null, 10_000, () => JSON.stringify(node.sup.status()));
      assert.notEqual(node.sup.pid, old);
      assert.ok(await node.sup.birdc.answers());
    }
    const waits = node.log.lines.filter((l) => l.includes('bird exited; restarting')).map((l) => JSON.parse(l).restartInMs);
    assert.deepEqual(waits, [100, 200]);
    // It runs the latest configuration.
    assert.equal((await node.sup.birdc.bgpSessions()).length, 2);
  });

  it('stop() ends BIRD and nothing starts it again', async () => {
    const pid = node.sup.pid!;
    await node.sup.stop();
    assert.equal(pidAlive(pid), false);
    assert.equal(node.sup.pid, null);
    await sleep(400);
    assert.equal(node.sup.pid, null);
    assert.equal(node.sup.status().running, false);
  });

  it('replaces a BIRD an earlier agent left running on the same socket', async () => {
    const p = node.sup.status();
    const orphan = await startDaemon(
      [findTool('nsenter'), `--net=${node.netnsPath}`, '--', findTool('bird'), '-f', '-c', p.config, '-s', p.socket, '-P', join(node.dir, 'bird.pid')],
      { logFile: join(node.dir, 'orphan.log') },
    );
    const pidFile = () => {
      try {
        return readFileSync(join(node.dir, 'bird.pid'), 'utf8').trim();
      } catch {
        return null; // BIRD removes it when it exits, and writes it once it runs
      }
    };
    await waitFor(() => pidFile() === String(orphan), 5000, () => 'the orphan never wrote its pid file');
    await node.sup.start();
    assert.equal(pidAlive(orphan), false, 'the orphan was stopped');
    assert.notEqual(node.sup.pid, orphan);
    assert.ok(await node.sup.birdc.answers());
    assert.ok(logged().includes('stopping a BIRD left running on this socket'));
    await node.sup.stop();
  });

  it('a reload that failed is tried again by the next apply, even of the same text', async () => {
    await node.sup.start();
    const socket = node.sup.status().socket;
    const reloads = node.sup.reloads;
    renameSync(socket, `${socket}.away`); // birdc cannot reach BIRD now
    const c = text();
    await assert.rejects(node.sup.apply(c.text, c.secrets), /birdc configure failed/);
    assert.equal(readFileSync(conf, 'utf8'), c.text, 'the file is written before the reload');
    assert.match(node.sup.status().lastError ?? '', /birdc configure failed/);
    renameSync(`${socket}.away`, socket);
    assert.equal(await node.sup.apply(c.text, c.secrets), 'reloaded');
    assert.equal(node.sup.reloads, reloads + 1);
    assert.deepEqual((await node.sup.birdc.bgpSessions()).map((s) => s.name), ['peer_198_18_0_40']);
    await node.sup.stop();
  });

  it('start() without a configuration, or on one BIRD refuses to run, fails clearly', async () => {
    const empty = lab.addNode(2);
    await assert.rejects(empty.sup.start(), /no BIRD configuration/);
    // A configuration BIRD accepts, but a control socket it cannot create: start() reports, no restart loop.
    writeFileSync(join(empty.dir, 'bird.conf'), readFileSync(conf, 'utf8'));
    const blocked = new BirdSupervisor({
      paths: { config: join(empty.dir, 'bird.conf'), socket: '/nonexistent-dir/bird.ctl', pidFile: join(empty.dir, 'bird.pid'), logFile: join(empty.dir, 'bird.log') },
      runner: new ProcessRunner(),
      log: empty.log,
      netns: empty.netnsPath,
    });
    await assert.rejects(blocked.start(), /BIRD exited after start/);
    await sleep(300);
    assert.equal(blocked.pid, null);
    assert.equal(blocked.restarts, 0);
  });
});
