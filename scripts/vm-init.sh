#!/bin/sh
# PID 1 of the emulated test VM (built by test/helpers/vm-image.ts, driven by test/helpers/vm.ts).
# Loads the kernel modules listed in /testcni/modules, then runs every job in /testcni/jobs/*/
# in turn: its script.sh, in a fresh network namespace, with its own directory as the working
# directory, under a time limit. Each job's output is bracketed by "@@TOKEN begin|end" lines;
# between jobs every leftover process and named netns is removed. Then it powers off.
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/console 2>&1
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# ip netns keeps its bind mounts under /run/netns (/var/run is a link to /run).
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp

tok=$(cat /testcni/token)
say() { echo "@@$tok $*"; }

for m in $(cat /testcni/modules); do
  modprobe "$m" || say "modprobe-failed $m"
done
say "ready $(cut -d' ' -f1 /proc/uptime) $(uname -r)"

for dir in /testcni/jobs/*/; do
  [ -f "$dir/script.sh" ] || continue
  job=$(basename "$dir")
  say "begin $job"
  (cd "$dir" && exec timeout -s KILL "$(cat limit)" unshare -n /bin/sh -c '/usr/sbin/ip link set lo up && exec /bin/sh ./script.sh')
  say "end $job $?"
  # Leave nothing to the next job: processes, named namespaces, scratch files.
  kill -9 -1 2>/dev/null
  for ns in /run/netns/*; do [ -e "$ns" ] && ip netns del "${ns##*/}"; done 2>/dev/null
  rm -rf /tmp/* 2>/dev/null
done
say "done"
poweroff -f
echo o >/proc/sysrq-trigger
