// The node agent as `testcni manifests` deploys it, per mode: started from the rendered
// ConfigMap's agent.yaml, with exactly the capabilities the rendered DaemonSet grants its
// container (setpriv: bounding set, no inheritable, no_new_privs as allowPrivilegeEscalation:
// false), a read-only /proc/sys (what an unprivileged container sees) and the host mounts the
// DaemonSet gives it (host-gw: the node's /proc/sys/net), inside a simulated node with a real
// etcd. The mode's node state converges with that (host-gw: routes, forwarding, no redirects;
// macvlan: nothing, IPAM only; ipip: BIRD; vxlan: programs and maps in the bpffs it mounts); without the capability, or without the mount, it does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { rootSkipReason, uniquePrefix, inNetns, addNetns, delNetns, NETNS_DIR, PLUGIN, toolPath } from '../helpers/netns.ts';
import { Scope, cni, show } from '../helpers/e2e.ts';
import { modeNode, type ModeNode } from '../helpers/mode-nodes.ts';
import { PrivateMountNs } from '../helpers/mount-ns.ts';
import { startEtcd, stopPid, etcdAvailable } from '../../lab/etcd.ts';
import { startDaemon } from '../../executor/runner.ts';
import { AgentStore } from '../../ipam/agent-store.ts';
import { renderManifests, MANIFEST_DEFAULTS, type ManifestOptions } from '../../install/manifests.ts';
import type { AgentStatus } from '../../ipam/agent-protocol.ts';
import { LAB_TIMERS } from '../../planner/modes/ipip/index.ts';
import { bgpSkipReason } from '../helpers/bgp.ts';
import { BPFFS, bpfSkipReason } from '../helpers/bpf.ts';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const skip = rootSkipReason(['setpriv', 'etcdctl', 'ping']) ?? etcdAvailable() ?? undefined;
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Each mode's manifest inputs on the test's wire (mode-nodes.ts: node 198.18.0.11, gateway .1). */
const SAMPLES: Record<string, Pick<ManifestOptions, 'clusterSubnet' | 'networkConfig'>> = {
  'host-gw': { clusterSubnet: '10.244.0.0/16', networkConfig: {} },
  macvlan: { clusterSubnet: '198.18.0.0/24', networkConfig: { macvlan: { master: 'eth0' }, ipam: { rangeStart: '198.18.0.100', rangeEnd: '198.18.0.120', gateway: '198.18.0.1' } } },
  // this kernel has no IPIP device: never; the lab's short BGP timers
  ipip: { clusterSubnet: '10.244.0.0/16', networkConfig: { bgp: { ipipMode: 'never', timers: LAB_TIMERS } } },
  vxlan: { clusterSubnet: '10.244.0.0/16', networkConfig: {} },
};

function rendered(mode: string): { agentYaml: string; conflist: Obj; caps: string[]; noNewPrivs: boolean; mounts: Record<string, string> } {
  const o: ManifestOptions = {
    ...MANIFEST_DEFAULTS, mode, ...SAMPLES[mode]!, etcdEndpoints: ['http://127.0.0.1:2379'], etcdTls: null, chain: [], cniVersion: null,
  };
  const objs = parseAllDocuments(renderManifests(o)) as unknown as { toJS(): Obj }[];
  const docs = objs.map((d) => d.toJS());
  const cm = docs.find((d) => d.kind === 'ConfigMap')!;
  const pod = docs.find((d) => d.kind === 'DaemonSet')!.spec.template.spec;
  const agent = pod.containers[0];
  const hostPaths = Object.fromEntries(pod.volumes.filter((v: Obj) => v.hostPath).map((v: Obj) => [v.name, v.hostPath.path]));
  return {
    mounts: Object.fromEntries(agent.volumeMounts.filter((m: Obj) => hostPaths[m.name]).map((m: Obj) => [m.mountPath, hostPaths[m.name]])),
    agentYaml: cm.data['agent.yaml'],
    conflist: JSON.parse(cm.data['10-testcni.conflist']),
    caps: agent.securityContext.capabilities.add ?? [],
    noNewPrivs: agent.securityContext.allowPrivilegeEscalation === false,
  };
}

interface Run {
  status(): Promise<AgentStatus>;
  socket: string;
  /** the agent's own dir: its socket's, so its daemons' run dir (BIRD's control socket) */
  dir: string;
  stop(): Promise<void>;
}

interface AgentRun {
  mode: string;
  agentYaml: string;
  /** the DaemonSet's capabilities, in a container-like mount namespace; null: a plain root
   *  process in the node (another node of the test) */
  caps: string[] | null;
  noNewPrivs?: boolean;
  /** the agent.yaml's procSys, as seen in the container (mapped under its root), or null to run
   *  without the mount (the container's own read-only /proc/sys) */
  procSys?: string | null;
  /** another node than the ModeNode's (netns name, registry name, underlay address) */
  node?: { netns: string; name: string; ip: string };
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sets up etcd (in the node, or another netns at `etcdAt`) and a container-like mount
 *  namespace, and returns a starter of agents. */
async function cluster(scope: Scope, m: ModeNode, t: { after(fn: () => Promise<void> | void): void }, etcdAt = { netns: m.node.name, host: '127.0.0.1' }) {
  const pids: number[] = [];
  t.after(async () => {
    for (const pid of pids.reverse()) await stopPid(pid);
  });
  const etcdDir = join(m.node.dir, 'etcd');
  mkdirSync(etcdDir);
  const etcd = await startEtcd({ netns: join(NETNS_DIR, etcdAt.netns), host: etcdAt.host, clientPort: 2379, peerPort: 2380, dir: etcdDir, onStart: (pid) => pids.push(pid) });
  // A container's view: the node's /proc/sys/net where the DaemonSet mounts it (under a dir of
  // the test's, standing for the container's root), then its own /proc/sys read-only.
  const root = join(m.node.dir, 'container');
  mkdirSync(join(root, 'host', 'proc', 'sys', 'net'), { recursive: true });
  const mnt = PrivateMountNs.create();
  scope.defer(() => mnt.destroy());
  mnt.run(['mount', '--bind', '/proc/sys/net', join(root, 'host', 'proc', 'sys', 'net')]);
  mnt.run(['mount', '--bind', '/proc/sys', '/proc/sys']);
  mnt.run(['mount', '-o', 'remount,bind,ro', '/proc/sys']);
  let n = 0;
  const start = async (a: AgentRun): Promise<Run> => {
    const dir = join(m.node.dir, `agent${n++}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'agent.yaml'), a.agentYaml);
    const socket = join(dir, 'agent.sock');
    const node = a.node ?? { netns: m.node.name, name: 'n1', ip: m.nodeIp };
    const agent = [process.execPath, PLUGIN, 'agent', '--config', join(dir, 'agent.yaml'), '--node-name', node.name, '--underlay-ip', node.ip,
      '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', `/${scope.prefix}`, '--socket', socket, '--state-dir', join(dir, 'state'),
      '--metrics-address', 'off', '--lease-ttl', '5', '--resync', '1'];
    const nodeNs = join(NETNS_DIR, node.netns);
    let argv: string[];
    if (a.caps === null) argv = [toolPath('nsenter')!, `--net=${nodeNs}`, '--', ...agent];
    else {
      const bounding = ['-all', ...a.caps.map((c) => `+${c.toLowerCase()}`)].join(',');
      const inside = mnt.enter([toolPath('setpriv')!, ...(a.noNewPrivs ? ['--no-new-privs'] : []), '--bounding-set', bounding, '--inh-caps', '-all', '--',
        ...agent, '--proc-sys', a.procSys ? join(root, a.procSys) : '/proc/sys'], nodeNs);
      argv = [toolPath('nsenter')!, ...inside.slice(1)];
    }
    const pid = await startDaemon(argv, { logFile: join(dir, 'agent.log') });
    pids.push(pid);
    const store = new AgentStore(socket, 2000);
    const run: Run = {
      socket,
      dir,
      status: () => store.agentStatus(),
      stop: async () => {
        await stopPid(pid);
        pids.splice(pids.indexOf(pid), 1);
      },
    };
    await until(`the ${a.mode} agent to be ready (log: ${join(dir, 'agent.log')})`, 20_000, async () => ((await run.status()).ready ? true : null))
      .catch((e) => {
        throw new Error(`${(e as Error).message}\n${readFileSync(join(dir, 'agent.log'), 'utf8').slice(-1500)}`);
      });
    return run;
  };
  const etcdPut = (key: string, value: unknown) =>
    inNetns(etcdAt.netns, ['etcdctl', '--endpoints', etcd.endpoint, 'put', `/${scope.prefix}/${key}`, JSON.stringify(value)]);
  return { start, etcdPut };
}

test('host-gw: the agent with the DaemonSet\'s capability and mounts keeps routes and sysctls; without NET_ADMIN or the /proc/sys/net mount it cannot', { skip, timeout: 90_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('ac'));
  const m = modeNode(scope, 'host-gw');
  const r = rendered('host-gw');
  assert.deepEqual(r.caps, ['NET_ADMIN'], 'what the DaemonSet grants host-gw\'s agent');
  assert.equal(r.noNewPrivs, true);
  assert.equal(r.mounts['/host/proc/sys/net'], '/proc/sys/net', 'the node\'s /proc/sys/net, where runc allows a mount');
  const procSys = (parseAllDocuments(r.agentYaml) as unknown as { toJS(): Obj }[])[0]!.toJS().procSys;
  assert.equal(procSys, '/host/proc/sys', 'agent.yaml points the agent at it');
  const c = await cluster(scope, m, t);
  const routes = () => JSON.parse(inNetns(m.node.name, ['ip', '-j', 'route', 'show', 'proto', '151']).stdout || '[]') as { dst: string; gateway: string }[];
  const sysctl = (k: string) => inNetns(m.node.name, ['sysctl', '-n', k]).stdout.trim();
  // a fresh node: forwarding off, redirects on (the kernel's defaults)
  assert.deepEqual([sysctl('net.ipv4.conf.eth0.forwarding'), sysctl('net.ipv4.conf.all.send_redirects')], ['0', '1']);

  // The controls first, each on the node as it is: no capability beyond none ...
  const weak = await c.start({ mode: 'host-gw', caps: [], noNewPrivs: r.noNewPrivs, agentYaml: r.agentYaml, procSys });
  c.etcdPut('nodes/n2', { name: 'n2', underlayIp: '198.18.0.12', block: '10.244.200.0/24' });
  const denied = await until('a failed reconcile without NET_ADMIN', 15_000, async () => {
    const st = await weak.status();
    return st.lastReconcile && !st.lastReconcile.ok && st.nodes.some((x) => x.name === 'n2') ? st : null;
  });
  t.diagnostic(`without NET_ADMIN: ${denied.lastReconcile?.error?.slice(0, 160)}`);
  assert.deepEqual(routes(), [], 'no route without NET_ADMIN');
  await weak.stop();
  // ... and no mount: the container's own /proc/sys is read-only (the manifests before this one)
  const noMount = await c.start({ mode: 'host-gw', caps: r.caps, noNewPrivs: r.noNewPrivs, agentYaml: r.agentYaml, procSys: null });
  const erofs = await until('a reconcile that cannot write sysctls', 15_000, async () => {
    const st = await noMount.status();
    return st.lastReconcile && !st.lastReconcile.ok ? st : null;
  });
  assert.match(erofs.lastReconcile?.error ?? '', /EROFS/, 'read-only /proc/sys');
  assert.equal(sysctl('net.ipv4.conf.eth0.forwarding'), '0');
  await noMount.stop();

  // As deployed: converged, the route in, forwarding on, redirects off.
  const agent = await c.start({ mode: 'host-gw', caps: r.caps, noNewPrivs: r.noNewPrivs, agentYaml: r.agentYaml, procSys });
  await until('the route to n2\'s block', 15_000, async () => (routes().some((x) => x.dst === '10.244.200.0/24' && x.gateway === '198.18.0.12') ? true : null));
  let last: AgentStatus | null = null;
  const s = await until('a converged agent', 10_000, async () => {
    last = await agent.status();
    return last.converged ? last : null;
  }).catch((e) => assert.fail(`${(e as Error).message}: ${JSON.stringify((last as AgentStatus | null)?.lastReconcile)}`));
  assert.equal(s.lastReconcile?.ok, true, JSON.stringify(s.lastReconcile));
  assert.deepEqual([sysctl('net.ipv4.conf.eth0.forwarding'), sysctl('net.ipv4.conf.all.send_redirects')], ['1', '0']);
  await agent.stop();
});

test('macvlan: the agent with no capability at all serves IPAM from the shared range; a pod gets its address through it', { skip, timeout: 60_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('ac'));
  const m = modeNode(scope, 'macvlan');
  const r = rendered('macvlan');
  assert.deepEqual(r.caps, [], 'the DaemonSet grants macvlan\'s agent nothing');
  const c = await cluster(scope, m, t);
  const agent = await c.start({ mode: 'macvlan', caps: r.caps, noNewPrivs: r.noNewPrivs, agentYaml: r.agentYaml });
  const s = await agent.status();
  assert.equal(s.mode, 'macvlan');
  assert.ok(s.converged, JSON.stringify(s.lastReconcile));
  // the ConfigMap's testcni entry, with this node's socket and state dir for the paths
  const entry = r.conflist.plugins[0] as Obj;
  const config = { ...entry, cniVersion: r.conflist.cniVersion, name: r.conflist.name, stateDir: m.node.stateDir, ipam: { ...entry.ipam, agentSocket: agent.socket } };
  const pod = scope.pod('1');
  const add = cni(m.node, { command: 'ADD', containerId: `${scope.prefix}-1`, netns: pod.path, config });
  assert.equal(add.code, 0, show(add));
  const ip = String((add.json?.ips as { address: string }[])[0]!.address).split('/')[0]!;
  assert.match(ip, m.podAddress, 'from the range in networkConfig');
  assert.equal(inNetns(m.wire, ['ping', '-n', '-q', '-c', '1', '-W', '1', ip], { allowFail: true }).code, 0, 'another host reaches it at once');
  const del = cni(m.node, { command: 'DEL', containerId: `${scope.prefix}-1`, netns: pod.path, config });
  assert.equal(del.code, 0, show(del));
  assert.equal((await agent.status()).ipam?.used, 0, 'released');
  await agent.stop();
});

test('ipip (never): BIRD under the agent with the DaemonSet\'s capabilities peers and installs routes; without NET_BIND_SERVICE it cannot listen', { skip: skip ?? bgpSkipReason(), timeout: 120_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('ac'));
  const m = modeNode(scope, 'ipip');
  const r = rendered('ipip');
  assert.deepEqual(r.caps, ['NET_ADMIN', 'NET_BIND_SERVICE'], 'what the DaemonSet grants ipip\'s agent');
  assert.equal(r.mounts['/host/proc/sys/net'], '/proc/sys/net');
  const procSys = (parseAllDocuments(r.agentYaml) as unknown as { toJS(): Obj }[])[0]!.toJS().procSys as string;
  // a second node on the wire, whose agent and BIRD run as plain root processes
  const n2 = `${scope.prefix}n2`;
  addNetns(n2);
  scope.defer(() => delNetns(n2));
  inNetns(m.wire, ['ip', 'link', 'add', 'up2', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n2]);
  inNetns(m.wire, ['ip', 'link', 'set', 'up2', 'master', 'br0', 'up']);
  inNetns(n2, ['ip', '-batch', '-'], { input: 'link set lo up\nlink set eth0 up\naddr add 198.18.0.12/24 dev eth0\nroute add default via 198.18.0.1\n' });
  const c = await cluster(scope, m, t, { netns: m.wire, host: '198.18.0.1' });
  const other = await c.start({ mode: 'ipip', caps: null, agentYaml: r.agentYaml, node: { netns: n2, name: 'n2', ip: '198.18.0.12' } });
  const block2 = (await other.status()).block!;
  const routes = (ns: string, ...filter: string[]) => JSON.parse(inNetns(ns, ['ip', '-j', 'route', 'show', ...filter]).stdout || '[]') as { dst: string; type?: string }[];
  const birdc = (run: Run, ...args: string[]) => inNetns(m.node.name, ['birdc', '-s', join(run.dir, 'bird.ctl'), ...args], { allowFail: true }).stdout;

  // The control: without NET_BIND_SERVICE, BIRD cannot open its BGP port, and no session comes up.
  const noBind = await c.start({ mode: 'ipip', caps: r.caps.filter((x) => x !== 'NET_BIND_SERVICE'), noNewPrivs: r.noNewPrivs, agentYaml: r.agentYaml, procSys });
  await until('BIRD to report it has no listening socket', 20_000, async () => (/No listening socket/.test(birdc(noBind, 'show', 'protocols', 'all')) ? true : null))
    .catch((e) => assert.fail(`${(e as Error).message}: ${birdc(noBind, 'show', 'protocols', 'all')}`));
  assert.ok(!routes(m.node.name, 'proto', 'bird').some((x) => x.dst === block2), 'no route learned');
  await noBind.stop();

  // As deployed: sessions up, each node routes the other's block, n1 holds its blackhole.
  const agent = await c.start({ mode: 'ipip', caps: r.caps, noNewPrivs: r.noNewPrivs, agentYaml: r.agentYaml, procSys });
  const block1 = (await agent.status()).block!;
  await until('each node to learn the other\'s block over BGP', 20_000, async () =>
    (routes(m.node.name, 'proto', 'bird').some((x) => x.dst === block2) && routes(n2, 'proto', 'bird').some((x) => x.dst === block1) ? true : null))
    .catch((e) => assert.fail(`${(e as Error).message}: ${birdc(agent, 'show', 'protocols', 'all')}`));
  assert.ok(routes(m.node.name, 'type', 'blackhole').some((x) => x.dst === block1), 'n1\'s blackhole, made by its agent');
  assert.match(birdc(agent, 'show', 'protocols'), /Established/);
  assert.equal(inNetns(m.node.name, ['sysctl', '-n', 'net.ipv4.conf.eth0.forwarding']).stdout.trim(), '1', 'forwarding set through the mount');
  await agent.stop();
  await other.stop();
});

test('vxlan: the agent with NET_ADMIN, BPF and PERFMON and the node\'s bpffs loads the dataplane and fills the remote map; without BPF or PERFMON it cannot', { skip: skip ?? bpfSkipReason(['ethtool']) ?? undefined, timeout: 90_000 }, async (t) => {
  const scope = new Scope(t, uniquePrefix('ac'));
  const m = modeNode(scope, 'vxlan');
  const r = rendered('vxlan');
  assert.deepEqual(r.caps, ['NET_ADMIN', 'BPF', 'PERFMON'], 'what the DaemonSet grants vxlan\'s agent');
  assert.equal(r.mounts[BPFFS], BPFFS, 'the node\'s bpffs at the same path');
  assert.equal(r.mounts['/host/proc/sys/net'], '/proc/sys/net');
  const procSys = (parseAllDocuments(r.agentYaml) as unknown as { toJS(): Obj }[])[0]!.toJS().procSys as string;
  const network = String(r.conflist.name);
  const networkPins = join(BPFFS, 'testcni', network);
  scope.defer(() => spawnSync('rm', ['-rf', networkPins]));
  const c = await cluster(scope, m, t);
  c.etcdPut('nodes/n2', { name: 'n2', underlayIp: '198.18.0.12', block: '10.244.200.0/24' });
  /** the remote map's entries, in whichever node's pin dir the agent made */
  const remote = (): number | null => {
    if (!existsSync(networkPins)) return null;
    const dirs = readdirSync(networkPins, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.includes('tmp'));
    if (dirs.length !== 1) return null;
    const dump = spawnSync('bpftool', ['-j', 'map', 'dump', 'pinned', join(networkPins, dirs[0]!.name, 'maps', 'testcni_remote')], { encoding: 'utf8' });
    return dump.status === 0 ? (JSON.parse(dump.stdout) as unknown[]).length : null;
  };
  const device = () => inNetns(m.node.name, ['ip', '-j', '-d', 'link', 'show', 'dev', 'testcni.vxlan'], { allowFail: true }).code === 0;

  // The control: NET_ADMIN without BPF cannot load programs or make maps.
  const weak = await c.start({ mode: 'vxlan', caps: r.caps.filter((x) => x !== 'BPF'), noNewPrivs: r.noNewPrivs, agentYaml: r.agentYaml, procSys });
  const denied = await until('a failed reconcile without BPF', 20_000, async () => {
    const st = await weak.status();
    return st.lastReconcile && !st.lastReconcile.ok ? st : null;
  });
  t.diagnostic(`without BPF: ${denied.lastReconcile?.error?.slice(0, 200)}`);
  assert.equal(remote(), null, 'no maps without BPF');
  await weak.stop();
  const noPerfmon = await c.start({ mode: 'vxlan', caps: r.caps.filter((x) => x !== 'PERFMON'), noNewPrivs: r.noNewPrivs, agentYaml: r.agentYaml, procSys });
  const refused = await until('a failed reconcile without PERFMON', 20_000, async () => {
    const st = await noPerfmon.status();
    return st.lastReconcile && !st.lastReconcile.ok ? st : null;
  });
  assert.match(refused.lastReconcile?.error ?? '', /verifier: .*(CAP_PERFMON|prohibited for !root)/, 'the verifier refuses the programs, and the agent says why');
  await noPerfmon.stop();

  // As deployed: converged, the device up, n2's block and address in the remote map.
  const agent = await c.start({ mode: 'vxlan', caps: r.caps, noNewPrivs: r.noNewPrivs, agentYaml: r.agentYaml, procSys });
  let last: AgentStatus | null = null;
  await until('a converged agent', 30_000, async () => {
    last = await agent.status();
    return last.converged && last.nodes.some((x) => x.name === 'n2') ? last : null;
  }).catch((e) => assert.fail(`${(e as Error).message}: ${JSON.stringify((last as AgentStatus | null)?.lastReconcile)}`));
  assert.ok(device(), 'the VXLAN device');
  assert.equal(remote(), 2, 'n2\'s block and its underlay address/32');
  assert.equal(inNetns(m.node.name, ['sysctl', '-n', 'net.ipv4.conf.eth0.forwarding']).stdout.trim(), '1', 'forwarding set through the mount');
  await agent.stop();
});
