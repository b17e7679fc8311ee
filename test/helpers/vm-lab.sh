# Shell library for the VM datapath scenarios (sourced by each job's script.sh inside the VM).
# It builds what a cluster gives the plugin -- underlay segments, node and pod namespaces --
# runs plans the way the plugin does (inside the node's netns), and reports results as
# "RESULT key value" lines that the test reads. None of this is part of a plan.
NETNS=/var/run/netns

# segment NAME: an underlay L2 segment (a bridge in the job's own netns)
segment() {
  ip link add "$1" type bridge
  ip link set "$1" up
}

# node NAME ADDR/LEN SEGMENT [DEFAULT_GW]: a node netns with eth0 on SEGMENT (MTU 1500)
node() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip link add "$1-u" type veth peer name eth0 netns "$1"
  ip link set "$1-u" master "$3" up
  ip -n "$1" addr add "$2" dev eth0
  ip -n "$1" link set eth0 up
  if [ -n "${4:-}" ]; then ip -n "$1" route add default via "$4"; fi
}

# router NAME ADDR/LEN SEGMENT [ADDR/LEN SEGMENT]...: a plain IPv4 router between segments
router() {
  r=$1
  shift
  ip netns add "$r"
  ip -n "$r" link set lo up
  i=0
  while [ $# -ge 2 ]; do
    ip link add "$r-u$i" type veth peer name "eth$i" netns "$r"
    ip link set "$r-u$i" master "$2" up
    ip -n "$r" addr add "$1" dev "eth$i"
    ip -n "$r" link set "eth$i" up
    i=$((i + 1))
    shift 2
  done
  at "$r" sysctl -q -w net.ipv4.ip_forward=1
}

# pod NAME: an empty pod netns, as a container runtime makes it
pod() {
  ip netns add "$1"
  ip -n "$1" link set lo up
}

# at NS CMD...: run CMD in a named netns, entered the way rendered plans enter one
at() {
  ns=$1
  shift
  nsenter --net="$NETNS/$ns" -- "$@"
}

# apply NODE FILE: run a plan script (a job file) as the plugin would, inside the node's netns
apply() {
  echo "# apply $2 on $1"
  nsenter --net="$NETNS/$1" -- /bin/sh "./$2"
}

# result KEY CMD...: run CMD (its output goes to the log), then report its exit status
result() {
  key=$1
  shift
  set +e
  "$@"
  rc=$?
  set -e
  echo "RESULT $key $rc"
}

# report KEY VALUE: a value (a number, a word, or one line of JSON) for the test to read
report() {
  echo "RESULT $1 $2"
}

# wait_ping NS ADDR: wait (up to ~5 s) until ADDR answers; a fresh bridge drops its first packets
wait_ping() {
  n=0
  until at "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; do
    n=$((n + 1))
    if [ "$n" -ge 5 ]; then
      echo "underlay: $1 cannot reach $2"
      return 1
    fi
  done
}

# attempt KEY CMD...: run CMD, report its exit status as KEY and its stderr (one line) as KEY.err
attempt() {
  key=$1
  shift
  set +e
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  set -e
  echo "RESULT $key $rc"
  echo "RESULT $key.err $(echo "$err" | tr '\n' ' ' | sed 's/ *$//')"
}

# wait_bird_routes NS N: wait (up to ~40 s) until NS holds N routes of BIRD's (proto bird)
wait_bird_routes() {
  n=0
  until [ "$(at "$1" ip route show proto bird | wc -l)" -ge "$2" ]; do
    n=$((n + 1))
    if [ "$n" -ge 200 ]; then
      echo "$1 holds $(at "$1" ip route show proto bird | wc -l) routes from BIRD, not $2"
      return 1
    fi
    sleep 0.2
  done
}

# probe KEY CMD...: run a plan's probe query, report its exit status as KEY.rc and its stdout
# (one line) as KEY.out, for the test to judge with the probe's own predicate
probe() {
  key=$1
  shift
  set +e
  out=$("$@" 2>/dev/null)
  rc=$?
  set -e
  echo "RESULT $key.rc $rc"
  echo "RESULT $key.out $(echo "$out" | tr '\n' ' ' | sed 's/ *$//')"
}
