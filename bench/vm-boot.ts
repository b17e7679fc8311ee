// Figures for the emulated VM of the ipip/ipvlan datapath tests (test/helpers/vm.ts): image
// build, boot time, and what a process costs inside the guest under TCG. Prints figures;
// asserts nothing. `npm run bench:vm -- [--boots N] [--cpus C]`
import { loadavg } from 'node:os';
import { runJobsInVm, vmImage, vmSkipReason } from '../test/helpers/vm.ts';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const boots = arg('boots', 3);
const cpus = arg('cpus', 1);
const reason = vmSkipReason();
if (reason) {
  console.error(`vm-boot: ${reason}`);
  process.exit(2);
}

const load = () => loadavg()[0]!.toFixed(2);
console.log(`load average (1 min) at start: ${load()}; guest vCPUs: ${cpus}`);

let t = Date.now();
const image = vmImage();
console.log(`image: ${Date.now() - t} ms (built, or found in the cache) in ${image.dir}; kernel ${image.kernelVersion}, -kernel ${image.kernel.endsWith('vmlinux') ? 'vmlinux (PVH)' : 'bzImage'}`);

const rows: string[] = [];
for (let i = 0; i < boots; i++) {
  t = Date.now();
  const r = await runJobsInVm([{ name: 'noop', script: 'true' }], { cpus });
  rows.push(`  boot ${i + 1}: ready ${r.bootMs} ms (guest uptime ${r.guestReadyS} s), power-off ${r.totalMs} ms`);
}
console.log(`empty boots (qemu start -> modules loaded -> one no-op job -> qemu exit):\n${rows.join('\n')}`);

// Per-process costs in the guest: each line runs the command 20 times and prints ms per run.
const costs = await runJobsInVm([{
  name: 'costs',
  script: `
each() { s=$(cut -d' ' -f1 /proc/uptime); i=0; while [ $i -lt 20 ]; do "$@" >/dev/null 2>&1; i=$((i+1)); done
  e=$(cut -d' ' -f1 /proc/uptime); echo "$(echo "$s $e" | awk '{printf "%6.1f", ($2-$1)*1000/20}') ms  $*"; }
ip netns add a
ip link add v0 type veth peer name v1 netns a
ip addr add 198.18.0.1/24 dev v0; ip link set v0 up
ip -n a addr add 198.18.0.2/24 dev v1; ip -n a link set v1 up; ip -n a link set lo up
ping -c 1 -W 2 198.18.0.2 >/dev/null || true
each /bin/busybox true
each /bin/sh -c true
each /usr/sbin/ip -V
each /usr/sbin/sysctl -n net.ipv4.ip_forward
each /usr/bin/nsenter --net=/var/run/netns/a -- /usr/sbin/ip link show dev lo
each /usr/sbin/ip -n a link show dev lo
each ping -c 1 -W 1 198.18.0.2
`,
}], { cpus });
console.log(`per process in the guest (20 runs each):\n${costs.jobs[0]!.output}`);
console.log(`load average (1 min) at end: ${load()}`);
