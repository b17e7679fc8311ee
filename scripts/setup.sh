#!/usr/bin/env bash
# Prepares a fresh machine for the demo and the tests: Debian packages only if missing,
# node modules from the lock file, then the build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A NEED=(
  [ip]=iproute2 [nsenter]=util-linux [sysctl]=procps [iptables]=iptables
  [iptables-save]=iptables [ping]=iputils-ping [fping]=fping [/usr/lib/cni/bridge]=containernetworking-plugins
  [etcd]=etcd-server [etcdctl]=etcd-client [bird]=bird2 [birdc]=bird2 [gobgpd]=gobgpd [gobgp]=gobgpd
  [strip]=binutils  # the build strips the single executable's copy of Node (~13 MB smaller)
  # runtime tests: containerd CRI with runc, a pause image built static (gcc, libc.a), tc for bandwidth
  [containerd]=containerd [ctr]=containerd [runc]=runc [gcc]=gcc
  [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev [tc]=iproute2
  # the emulated VM of the ipip/ipvlan datapath tests (test/helpers/vm.ts)
  [qemu-system-x86_64]=qemu-system-x86 [/boot/vmlinuz-*]=linux-image-amd64 [/bin/busybox]=busybox-static
  [cpio]=cpio [xz]=xz-utils [dash]=dash
  # vxlan mode: tc eBPF programs (build, load, attach), the VXLAN device's offloads; its tests
  # capture on the underlay, its benchmark measures with iperf3
  [clang]=clang [llc]=llvm [/usr/include/bpf/bpf_helpers.h]=libbpf-dev
  [/usr/include/linux/bpf.h]=linux-libc-dev [bpftool]=bpftool [ethtool]=ethtool
  [tcpdump]=tcpdump [iperf3]=iperf3
)
missing=()
for cmd in "${!NEED[@]}"; do
  if [[ $cmd == /* ]]; then compgen -G "$cmd" >/dev/null || missing+=("${NEED[$cmd]}")
  else command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}"); fi
done
if ((${#missing[@]})); then
  mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup: installing ${pkgs[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then echo "setup: need root to install ${pkgs[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

node -e 'const [maj] = process.versions.node.split("."); if (+maj < 20) { console.error("setup: Node 20 or later is needed, found " + process.version); process.exit(1); }'
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
