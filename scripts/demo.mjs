// The demo: one simulated node (its own network namespace) and two pods, wired by the testcni
// binary exactly as a container runtime would call it (CNI_* environment + config on stdin),
// on the embedded default config: host-gw mode, file IPAM. Shows the plan, the results and
// connectivity, then removes everything it made. Nothing outside its namespaces is touched.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const plugin = join(root, 'dist', 'testcni.cjs');
const tag = `tcdemo${process.pid % 10000}`;
const node = `${tag}-node`;
const pods = [`${tag}-pod1`, `${tag}-pod2`];
const work = mkdtempSync(join(tmpdir(), `${tag}-`));
// The embedded defaults, with the node's state kept in the demo's own directory.
const config = {
  cniVersion: '1.1.0', name: 'testcni', type: 'testcni', subnet: '10.244.0.0/16',
  stateDir: join(work, 'state'), ipam: { dataDir: join(work, 'ipam') },
};
const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s = '') => process.stdout.write(s + '\n');
const title = (s) => say(`\n${bold(`== ${s}`)}`);

function run(argv, opts = {}) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: opts.env ?? env, input: opts.input ?? '' });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r;
}
const inNs = (ns, argv, opts) => run(['nsenter', `--net=/var/run/netns/${ns}`, '--', ...argv], opts);

/** One CNI call, as containerd makes it: env + stdin, run in the node's namespace. */
function cni(command, pod, containerId, extra = {}) {
  const r = inNs(node, [process.execPath, plugin], {
    env: { ...env, CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: pod ? `/var/run/netns/${pod}` : '', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' },
    input: JSON.stringify({ ...config, ...extra }),
    allowFail: true,
  });
  if (r.status !== 0) throw new Error(`CNI ${command} failed: ${r.stdout}${r.stderr}`);
  return r.stdout.trim() ? JSON.parse(r.stdout) : null;
}

function cleanup() {
  for (const ns of [...pods, node]) run(['ip', 'netns', 'del', ns], { allowFail: true });
  rmSync(work, { recursive: true, force: true });
}

function main() {
  if (process.getuid() !== 0) throw new Error('the demo needs root: it creates network namespaces');
  if (!existsSync(plugin)) throw new Error(`build first: ${plugin} is missing (make demo builds it)`);

  title('A node and two pods, each in a network namespace of its own');
  for (const ns of [node, ...pods]) {
    run(['ip', 'netns', 'add', ns]);
    inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
    say(`  netns ${ns}`);
  }

  title('The plan testcni compiles for pod 1 (testcni plan --dry-run; changes nothing)');
  const plan = inNs(node, [process.execPath, plugin, 'plan', '--dry-run', '--config', '-',
    '--netns', `/var/run/netns/${pods[0]}`, '--container-id', `${tag}-c1`], { input: JSON.stringify(config) });
  say(plan.stdout.trimEnd().replace(/^/gm, '  '));

  title('CNI ADD for both pods (what containerd does when it starts a pod)');
  const results = pods.map((pod, i) => cni('ADD', pod, `${tag}-c${i + 1}`));
  results.forEach((r, i) => {
    const ip = r.ips[0];
    say(`  pod ${i + 1}: ${ip.address} via ${ip.gateway} on ${r.interfaces[ip.interface].name} (host side ${r.interfaces[1].name})`);
  });

  title('Inside pod 1');
  say(inNs(pods[0], ['ip', '-br', 'addr', 'show', 'dev', 'eth0']).stdout.trimEnd().replace(/^/gm, '  '));
  say(inNs(pods[0], ['ip', 'route']).stdout.trimEnd().replace(/^/gm, '  '));
  title('On the node: the bridge and its ports');
  say(inNs(node, ['ip', '-br', 'link', 'show', 'master', 'testcni0']).stdout.trimEnd().replace(/^/gm, '  '));

  title('Connectivity');
  const targets = [['pod 1 -> pod 2', pods[0], results[1].ips[0].address.split('/')[0]],
    ['pod 2 -> pod 1', pods[1], results[0].ips[0].address.split('/')[0]],
    ['pod 1 -> gateway', pods[0], results[0].ips[0].gateway]];
  let failures = 0;
  for (const [label, from, to] of targets) {
    const r = inNs(from, ['ping', '-c', '3', '-i', '0.2', '-W', '1', to], { allowFail: true });
    const summary = (r.stdout.match(/\d+ packets transmitted.*/) ?? ['no reply'])[0];
    if (r.status !== 0) failures++;
    say(`  ${label.padEnd(18)} ${to.padEnd(12)} ${r.status === 0 ? 'ok  ' : 'FAIL'}  ${summary}`);
  }

  title('CHECK pod 1 against its plan');
  cni('CHECK', pods[0], `${tag}-c1`, { prevResult: results[0] });
  say('  ok: every probe of the recorded plan still holds');

  title('testcni status');
  const status = inNs(node, [process.execPath, plugin, 'status', '--config', '-'], { input: JSON.stringify(config), allowFail: true });
  say(status.stdout.trimEnd().replace(/^/gm, '  '));

  title('CNI DEL, twice per pod (containerd does; the second time without a netns)');
  pods.forEach((pod, i) => {
    cni('DEL', pod, `${tag}-c${i + 1}`);
    cni('DEL', null, `${tag}-c${i + 1}`);
  });
  const left = inNs(node, ['ip', '-br', 'link', 'show', 'master', 'testcni0']).stdout.trim();
  say(`  bridge ports left on the node: ${left === '' ? 'none' : left}`);
  return failures === 0 ? 0 : 1;
}

let code = 1;
try {
  code = main();
} catch (e) {
  process.stderr.write(`demo: ${e.message}\n`);
} finally {
  cleanup();
  title(code === 0 ? 'Demo done; its namespaces and files are removed.' : 'Demo FAILED; its namespaces and files are removed.');
}
process.exit(code);
