// A NUL byte cannot be part of a path, an interface name or anything else the kernel or a tool
// is given; JSON can carry one ("\u0000"). Refused up front for the whole config (code 7 naming
// the field) rather than failing deep inside a system call.
import { CniError, Code } from '../model/errors.ts';

/** The dotted path of the first string (value or key) holding a NUL byte, or null. Iterative,
 *  so a deeply nested document cannot overflow the stack. */
export function nulField(doc: unknown): string | null {
  const stack: [unknown, string][] = [[doc, '']];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      if (v.includes('\0')) return at || '(config)';
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push([x, `${at}[${i}]`]));
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        const field = at ? `${at}.${k}` : k;
        if (k.includes('\0')) return JSON.stringify(field);
        stack.push([x, field]);
      }
    }
  }
  return null;
}

export function refuseNulBytes(doc: unknown): void {
  const field = nulField(doc);
  if (field !== null) throw new CniError(Code.InvalidConfig, `invalid network config: ${field}`, `${field}: contains a NUL byte`);
}
