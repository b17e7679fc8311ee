#!/usr/bin/env node
// Figures of the BGP machinery (issue 9): simulated nodes (namespaces on an underlay bridge),
// a real BIRD in each, run by agent/bird/supervisor.ts on configurations from the view model,
// ipipMode never, the short test timers (hold 9, keepalive 3, connect delay 1, retry 2).
// Per round: 3 nodes start -> all sessions Established and every kernel route installed; a
// 4th node joins -> its block in every kernel, the others' in its own (and reloads per join);
// it leaves -> its block withdrawn everywhere; a BIRD killed -> restarted and converged again.
// Prints figures; exits 0 once it has measured (2: cannot run here). Removes everything it made.
import { register } from 'tsx/esm/api';
import { summary, fmt, table, parseArgs, fail, roundNumbers } from './lib.mjs';

const USAGE = `usage: node bench/bgp.mjs [--rounds N] [--json]   (as root)
  --rounds N   clusters built and measured (default 5)
  --json       print the figures as one JSON document instead of tables`;
const opts = parseArgs(process.argv.slice(2), { rounds: { default: 5, min: 1, max: 50 }, json: { type: 'flag', default: false } }, USAGE);

register();
const { BgpLab, bgpSkipReason, waitFor } = await import('../test/helpers/bgp.ts');
const why = bgpSkipReason();
if (why) fail(`bgp bench: ${why}`);

const now = () => performance.now();
const progress = (msg) => process.stderr.write(`bgp bench: ${msg}\n`);
const registry = (nodes) => nodes.map((n) => ({ name: n.name, underlayIp: n.underlayIp, blocks: n.blocks }));
const want = (lab, node, members) => JSON.stringify(members.filter((o) => o !== node).map((o) => `${o.block} via ${o.underlayIp}`).sort());
const have = (lab, node) => JSON.stringify(lab.routes(node).map((r) => `${r.dst} via ${r.gateway}`).sort());
const routesConverged = (lab, members) => members.every((n) => have(lab, n) === want(lab, n, members));
async function sessionsUp(members) {
  for (const node of members) {
    const s = await node.sup.birdc.bgpSessions().catch(() => []);
    if (!members.filter((o) => o !== node).every((o) => s.some((x) => x.peer === o.underlayIp && x.established))) return false;
  }
  return true;
}

const figures = { startEstablishedMs: [], startRoutesMs: [], joinRoutesMs: [], leaveWithdrawnMs: [], killConvergedMs: [], reloadsPerJoin: [], reloadsPerLeave: [] };
for (let round = 1; round <= opts.rounds; round++) {
  const prefix = `tcq${(process.pid % 1296).toString(36)}${round.toString(36)}`;
  const lab = new BgpLab(prefix);
  try {
    const n = [1, 2, 3].map((i) => lab.addNode(i));
    const t0 = now();
    for (const node of n) {
      await lab.configure(node, registry(n));
      await node.sup.start();
    }
    let established = null;
    await waitFor(async () => {
      if (established === null && (await sessionsUp(n))) established = now() - t0;
      return established !== null && routesConverged(lab, n);
    }, 30_000, () => 'the 3 nodes did not converge');
    figures.startEstablishedMs.push(established);
    figures.startRoutesMs.push(now() - t0);

    const joiner = lab.addNode(4);
    const all = [...n, joiner];
    const before = n.map((x) => x.sup.reloads);
    const t1 = now();
    for (const node of n) await lab.configure(node, registry(all));
    await lab.configure(joiner, registry(all));
    await joiner.sup.start();
    await waitFor(() => routesConverged(lab, all), 30_000, () => 'the join did not converge');
    figures.joinRoutesMs.push(now() - t1);
    figures.reloadsPerJoin.push(n.reduce((sum, x, i) => sum + x.sup.reloads - before[i], 0) / n.length);

    const t2 = now();
    await joiner.sup.stop('leave');
    await waitFor(() => n.every((x) => !lab.routes(x).some((r) => r.dst === joiner.block)), 30_000, () => 'the leave was not withdrawn');
    figures.leaveWithdrawnMs.push(now() - t2);
    const beforeLeave = n.map((x) => x.sup.reloads);
    for (const node of n) await lab.configure(node, registry(n));
    figures.reloadsPerLeave.push(n.reduce((sum, x, i) => sum + x.sup.reloads - beforeLeave[i], 0) / n.length);

    const victim = n[0];
    const old = victim.sup.pid;
    const t3 = now();
    process.kill(old, 'SIGKILL');
    await waitFor(async () => victim.sup.pid !== null && victim.sup.pid !== old && (await sessionsUp(n)) && routesConverged(lab, n), 30_000, () => 'no convergence after the kill');
    figures.killConvergedMs.push(now() - t3);
    progress(`round ${round}/${opts.rounds} done`);
  } finally {
    await lab.close();
  }
}

const rows = Object.entries(figures).map(([k, v]) => [k, ...(() => { const s = summary(v); return [s.n, fmt(s.p50), fmt(s.p95), fmt(s.min), fmt(s.max)]; })()]);
if (opts.json) process.stdout.write(JSON.stringify(Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, summary(v)])), roundNumbers, 2) + '\n');
else {
  process.stdout.write(table(['figure (ms, or reloads per node)', 'n', 'p50', 'p95', 'min', 'max'], rows) + '\n');
  process.stdout.write('\nTimers: hold 9 s, keepalive 3 s, connect delay 1 s, connect retry 2 s (machine-notes); a join waits for the new sessions\' connect delay.\n');
}
