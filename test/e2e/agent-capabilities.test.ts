// The node agent as `testcni manifests` deploys it, per mode: started from the rendered
// ConfigMap's agent.yaml, with exactly the capabilities the rendered DaemonSet grants its
// container (setpriv: bounding set, no inheritable, no_new_privs as allowPrivilegeEscalation:
// false), a read-only /proc/sys (what an unprivileged container sees) and the host mounts the
// DaemonSet gives it (host-gw: the node's /proc/sys/net), inside a simulated node with a real
// etcd. The mode's node state converges with that (host-gw: routes, forwarding, no redirects;
// macvlan: nothing, IPAM only); without the capability, or without the mount, it does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { rootSkipReason, uniquePrefix, inNetns, NETNS_DIR, PLUGIN, toolPath } from '../helpers/netns.ts';
import { Scope, cni, show } from '../helpers/e2e.ts';
import { modeNode, type ModeNode } from '../helpers/mode-nodes.ts';
import { PrivateMountNs } from '../helpers/mount-ns.ts';
import { startEtcd, stopPid, etcdAvailable } from '../../lab/etcd.ts';
import { startDaemon } from '../../executor/runner.ts';
import { AgentStore } from '../../ipam/agent-store.ts';
import { renderManifests, MANIFEST_DEFAULTS, type ManifestOptions } from '../../install/manifests.ts';
import type { AgentStatus } from '../../ipam/agent-protocol.ts';

const skip = rootSkipReason(['setpriv', 'etcdctl', 'ping']) ?? etcdAvailable() ?? undefined;
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Each mode's manifest inputs on the test's wire (mode-nodes.ts: node 198.18.0.11, gateway .1). */
const SAMPLES: Record<string, Pick<ManifestOptions, 'clusterSubnet' | 'networkConfig'>> = {
  'host-gw': { clusterSubnet: '10.244.0.0/16', networkConfig: {} },
  macvlan: { clusterSubnet: '198.18.0.0/24', networkConfig: { macvlan: { master: 'eth0' }, ipam: { rangeStart: '198.18.0.100', rangeEnd: '198.18.0.120', gateway: '198.18.0.1' } } },
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
  stop(): Promise<void>;
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

/** Sets up the node (etcd, a container-like mount namespace) and returns a starter of agents. */
async function cluster(scope: Scope, m: ModeNode, t: { after(fn: () => Promise<void> | void): void }) {
  const pids: number[] = [];
  t.after(async () => {
    for (const pid of pids.reverse()) await stopPid(pid);
  });
  const nodeNs = join(NETNS_DIR, m.node.name);
  const etcdDir = join(m.node.dir, 'etcd');
  mkdirSync(etcdDir);
  const etcd = await startEtcd({ netns: nodeNs, host: '127.0.0.1', clientPort: 2379, peerPort: 2380, dir: etcdDir, onStart: (pid) => pids.push(pid) });
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
  /** `procSys`: the agent.yaml's path, as seen in the container (mapped under `root`), or null to
   *  run without the mount (the container's own read-only /proc/sys). */
  const start = async (mode: string, caps: string[], noNewPrivs: boolean, agentYaml: string, procSys: string | null = null): Promise<Run> => {
    const dir = join(m.node.dir, `agent${n++}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'agent.yaml'), agentYaml);
    const socket = join(dir, 'agent.sock');
    const bounding = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
    const argv = mnt.enter([toolPath('setpriv')!, ...(noNewPrivs ? ['--no-new-privs'] : []), '--bounding-set', bounding, '--inh-caps', '-all', '--',
      process.execPath, PLUGIN, 'agent', '--config', join(dir, 'agent.yaml'), '--node-name', 'n1', '--underlay-ip', m.nodeIp,
      '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', `/${scope.prefix}`, '--socket', socket, '--state-dir', join(dir, 'state'),
      '--metrics-address', 'off', '--lease-ttl', '5', '--resync', '1', '--proc-sys', procSys ? join(root, procSys) : '/proc/sys'], nodeNs);
    const pid = await startDaemon([toolPath('nsenter')!, ...argv.slice(1)], { logFile: join(dir, 'agent.log') });
    pids.push(pid);
    const store = new AgentStore(socket, 2000);
    const run: Run = {
      socket,
      status: () => store.agentStatus(),
      stop: async () => {
        await stopPid(pid);
        pids.splice(pids.indexOf(pid), 1);
      },
    };
    await until(`the ${mode} agent to be ready (log: ${join(dir, 'agent.log')})`, 20_000, async () => ((await run.status()).ready ? true : null))
      .catch((e) => {
        throw new Error(`${(e as Error).message}\n${readFileSync(join(dir, 'agent.log'), 'utf8').slice(-1500)}`);
      });
    return run;
  };
  const etcdPut = (key: string, value: unknown) =>
    inNetns(m.node.name, ['etcdctl', '--endpoints', etcd.endpoint, 'put', `/${scope.prefix}/${key}`, JSON.stringify(value)]);
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
  const weak = await c.start('host-gw', [], r.noNewPrivs, r.agentYaml, procSys);
  c.etcdPut('nodes/n2', { name: 'n2', underlayIp: '198.18.0.12', block: '10.244.200.0/24' });
  const denied = await until('a failed reconcile without NET_ADMIN', 15_000, async () => {
    const st = await weak.status();
    return st.lastReconcile && !st.lastReconcile.ok && st.nodes.some((x) => x.name === 'n2') ? st : null;
  });
  t.diagnostic(`without NET_ADMIN: ${denied.lastReconcile?.error?.slice(0, 160)}`);
  assert.deepEqual(routes(), [], 'no route without NET_ADMIN');
  await weak.stop();
  // ... and no mount: the container's own /proc/sys is read-only (the manifests before this one)
  const noMount = await c.start('host-gw', r.caps, r.noNewPrivs, r.agentYaml, null);
  const erofs = await until('a reconcile that cannot write sysctls', 15_000, async () => {
    const st = await noMount.status();
    return st.lastReconcile && !st.lastReconcile.ok ? st : null;
  });
  assert.match(erofs.lastReconcile?.error ?? '', /EROFS/, 'read-only /proc/sys');
  assert.equal(sysctl('net.ipv4.conf.eth0.forwarding'), '0');
  await noMount.stop();

  // As deployed: converged, the route in, forwarding on, redirects off.
  const agent = await c.start('host-gw', r.caps, r.noNewPrivs, r.agentYaml, procSys);
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
  const agent = await c.start('macvlan', r.caps, r.noNewPrivs, r.agentYaml);
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
