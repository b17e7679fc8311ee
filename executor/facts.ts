// Node facts for the planner, gathered cheaply: tool paths and the uplink MTU come from the
// file system; a process is started only when /sys cannot be trusted for this namespace.
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import type { NodeFacts } from '../planner/types.ts';
import type { Runner } from './runner.ts';

const SEARCH = ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

export function findTool(name: string): string {
  for (const dir of SEARCH) {
    const p = `${dir}/${name}`;
    if (existsSync(p)) return p;
  }
  return `/usr/sbin/${name}`; // not installed: the step that needs it fails with a clear message
}

export function defaultTools(): NodeFacts['tools'] {
  return { ip: findTool('ip'), nsenter: findTool('nsenter'), sysctl: findTool('sysctl'), iptables: findTool('iptables') };
}

/** The interface of the IPv4 default route in this process's netns (/proc/self/net is per netns). */
export function defaultRouteDevice(): string | null {
  try {
    for (const line of readFileSync('/proc/self/net/route', 'utf8').split('\n').slice(1)) {
      const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
      if (iface && dest === '00000000' && mask === '00000000') return iface;
    }
  } catch { /* no IPv4 */ }
  return null;
}

/** /sys/class/net shows the netns of whoever mounted /sys: trust it only in the init netns. */
function sysfsIsOurs(): boolean {
  try {
    return readlinkSync('/proc/self/ns/net') === readlinkSync('/proc/1/ns/net');
  } catch {
    return false;
  }
}

export async function uplinkMtu(uplink: string | null, runner: Runner, ip: string): Promise<number | null> {
  const dev = uplink ?? defaultRouteDevice();
  if (!dev) return null;
  if (sysfsIsOurs()) {
    try {
      return Number(readFileSync(`/sys/class/net/${dev}/mtu`, 'utf8')) || null;
    } catch {
      return null;
    }
  }
  const r = await runner.run([ip, '-j', 'link', 'show', 'dev', dev]);
  if (r.exitCode !== 0) return null;
  try {
    return (JSON.parse(r.stdout) as { mtu?: number }[])[0]?.mtu ?? null;
  } catch {
    return null;
  }
}

export async function gatherFacts(opts: { uplink: string | null; mtuConfigured: boolean }, runner: Runner): Promise<NodeFacts> {
  const tools = defaultTools();
  return {
    tools,
    hostPid: process.pid,
    uplinkMtu: opts.mtuConfigured ? null : await uplinkMtu(opts.uplink, runner, tools.ip),
  };
}
