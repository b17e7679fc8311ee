// What the machine's kernel can create, asked once per process: a link of each type is added in a
// throwaway network namespace (never in the host's), then the namespace goes. The lab refuses a
// mode option whose device the kernel lacks (e.g. ipip here: "Unknown device type") up front,
// with the reason, instead of failing in the middle of `up`.
import { runner, tools } from './sys.ts';

const known = new Map<string, Promise<string | null>>();

/** null when the kernel can create a link of `type`, else what `ip link add` said. */
export function linkTypeRefusal(type: string): Promise<string | null> {
  let p = known.get(type);
  if (!p) {
    p = probe(type);
    known.set(type, p);
  }
  return p;
}

async function probe(type: string): Promise<string | null> {
  const ns = `tcprobe-${process.pid}-${known.size}`;
  const add = await runner.run([tools.ip, 'netns', 'add', ns]);
  if (add.exitCode !== 0) throw new Error(`cannot create a namespace to probe the kernel: ${add.stderr.trim()}`);
  try {
    const r = await runner.run([tools.ip, '-n', ns, 'link', 'add', 'tcprobe0', 'type', type]);
    // "File exists": the type comes with a fallback device in every namespace (ipip's tunl0),
    // which a second device of the same parameters collides with; the kernel knows the type.
    if (r.exitCode === 0 || /File exists/.test(r.stderr)) return null;
    return r.stderr.trim() || `exit ${r.exitCode}`;
  } finally {
    await runner.run([tools.ip, 'netns', 'del', ns]);
  }
}
