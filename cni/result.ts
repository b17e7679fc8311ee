// The CNI Result, built once in the latest shape and serialised per requested cniVersion.
import { atLeast, type CniVersion } from './version.ts';
import type { Result, ResultRoute } from '../model/result.ts';

export type { Result } from '../model/result.ts';

const ROUTE_1_1_ONLY = ['mtu', 'advmss', 'priority', 'table', 'scope'] as const;

/** A plain object in the wire format of `version` (key order fixed for stable output). */
export function serialiseResult(result: Result, version: CniVersion): Record<string, unknown> {
  const is11 = atLeast(version, '1.1.0');
  const legacy = !atLeast(version, '1.0.0');
  const interfaces = result.interfaces.map((i) => {
    const out: Record<string, unknown> = { name: i.name };
    if (i.mac !== undefined) out.mac = i.mac;
    if (is11 && i.mtu !== undefined) out.mtu = i.mtu;
    if (i.sandbox !== undefined) out.sandbox = i.sandbox;
    return out;
  });
  const ips = result.ips.map((ip) => {
    const out: Record<string, unknown> = {};
    if (legacy) out.version = ip.address.includes(':') ? '6' : '4';
    out.address = ip.address;
    if (ip.gateway !== undefined) out.gateway = ip.gateway;
    if (ip.interface !== undefined) out.interface = ip.interface;
    return out;
  });
  const routes = result.routes.map((r) => {
    const out: Record<string, unknown> = { dst: r.dst };
    if (r.gw !== undefined) out.gw = r.gw;
    if (is11) for (const k of ROUTE_1_1_ONLY) if (r[k] !== undefined) out[k] = r[k];
    return out;
  });
  return { cniVersion: version, interfaces, ips, routes, dns: result.dns };
}

/** Reads a prevResult of any supported version back into the internal shape. */
export function parsePrevResult(raw: Record<string, unknown> | null): Result | null {
  if (!raw) return null;
  const arr = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? (v as Record<string, unknown>[]) : []);
  return {
    interfaces: arr(raw.interfaces).map((i) => ({
      name: String(i.name ?? ''),
      ...(typeof i.mac === 'string' ? { mac: i.mac } : {}),
      ...(typeof i.mtu === 'number' ? { mtu: i.mtu } : {}),
      ...(typeof i.sandbox === 'string' ? { sandbox: i.sandbox } : {}),
    })),
    ips: arr(raw.ips).map((ip) => ({
      address: String(ip.address ?? ''),
      ...(typeof ip.gateway === 'string' ? { gateway: ip.gateway } : {}),
      ...(typeof ip.interface === 'number' ? { interface: ip.interface } : {}),
    })),
    routes: arr(raw.routes).map((r) => {
      const route: ResultRoute = { dst: String(r.dst ?? ''), ...(typeof r.gw === 'string' ? { gw: r.gw } : {}) };
      // 1.1 route attributes: kept so a 1.1 prevResult reads back whole.
      for (const k of ROUTE_1_1_ONLY) if (typeof r[k] === 'number') route[k] = r[k];
      return route;
    }),
    dns: (raw.dns as Record<string, unknown>) ?? {},
  };
}
