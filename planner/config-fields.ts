// Checks a mode's config parser shares: each failure is CNI code 7 naming the field.
import { CniError, Code } from '../model/errors.ts';
import { parseCidr, parseIp, type Cidr } from '../lib/ipv4.ts';

export function badField(field: string, why: string): never {
  throw new CniError(Code.InvalidConfig, `invalid network config: ${field}`, `${field}: ${why}`);
}

export function cidrField(field: string, text: string): Cidr {
  return parseCidr(text) ?? badField(field, `${JSON.stringify(text)} is not an IPv4 CIDR`);
}

export function ipField(field: string, text: string): number {
  return parseIp(text) ?? badField(field, `${JSON.stringify(text)} is not an IPv4 address`);
}

/** An interface name from the config: the schema counts characters, the kernel's limit is 15 bytes. */
export function ifNameField(field: string, value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (Buffer.byteLength(value) > 15) badField(field, `${JSON.stringify(value)} is longer than 15 bytes`);
  return value;
}
