// IPv4 address and CIDR arithmetic on plain numbers (pure, no I/O).

export interface Cidr {
  /** network address as an unsigned 32-bit number */
  base: number;
  prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function parseIp(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return null;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses "a.b.c.d/n". `strict` refuses host bits set in the address. */
export function parseCidr(text: string, strict = false): Cidr | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (ip === null || !/^\d{1,2}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  if (prefix > 32) return null;
  const base = (ip & maskOf(prefix)) >>> 0;
  if (strict && base !== ip) return null;
  return { base, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.base)}/${cidr.prefix}`;
}

export function size(cidr: Cidr): number {
  return 2 ** (32 - cidr.prefix);
}

export function lastIp(cidr: Cidr): number {
  return cidr.base + size(cidr) - 1;
}

export function contains(cidr: Cidr, ip: number): boolean {
  return ip >= cidr.base && ip <= lastIp(cidr);
}

export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && contains(outer, inner.base);
}

/** The index-th block of `prefix` bits inside `cidr`, or null when out of range. */
export function nthBlock(cidr: Cidr, prefix: number, index: number): Cidr | null {
  if (prefix < cidr.prefix || prefix > 32) return null;
  const count = 2 ** (prefix - cidr.prefix);
  if (index < 0 || index >= count) return null;
  return { base: cidr.base + index * 2 ** (32 - prefix), prefix };
}
