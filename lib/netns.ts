// Running a command in a network namespace, the one way this project does it: nsenter --net
// keeps the root mount namespace (unlike `ip netns exec`, which remounts /sys and hides bpffs
// pins), and works for any namespace file, named or not.
import { join } from 'node:path';

/** Where `ip netns` keeps named namespaces. */
export const NETNS_DIR = '/var/run/netns';

export function netnsPath(name: string): string {
  return join(NETNS_DIR, name);
}

/** argv run inside the network namespace at `path` (a file such as /var/run/netns/NAME). */
export function inNetnsArgv(nsenter: string, path: string, argv: string[]): string[] {
  return [nsenter, `--net=${path}`, '--', ...argv];
}
