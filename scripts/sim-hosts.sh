#!/usr/bin/env bash
# Simulated hosts on this machine, so a cluster runs as it would on N machines.
#
#   sim-hosts.sh up N            hosts h1..hN: each a network namespace on one bridge, with
#                                its own address and its own dockerd (socket, data root,
#                                exec root, pidfile), the local images loaded
#   sim-hosts.sh addr HOST       the host's address on the shared segment
#   sim-hosts.sh exec HOST CMD…  run CMD in the host's namespace with its DOCKER_HOST
#   sim-hosts.sh list            one line per host: name address DOCKER_HOST
#   sim-hosts.sh down            remove everything, also what a crashed run left behind
#
# Every name carries the prefix $GITOPS_SIM_PREFIX (default gsim): namespaces, links,
# cgroup parents, /run/gitops-sim/PREFIX and /var/lib/gitops-sim/PREFIX; `down` finds
# everything by it. Each dockerd runs with --iptables=false and no default bridge (the node
# agent makes its pod network on its pod CIDR), and with a pull proxy on a dead local port:
# nothing is ever pulled, and a namespace has no route beyond its segment.
# dockerd is started with `nsenter --net=…`, not `ip netns exec`: the latter remounts /sys
# and leaves dockerd without cgroups.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/docker-env.sh"     # the engine the images are copied from

prefix=${GITOPS_SIM_PREFIX:-gsim}
case "$prefix" in
  ''|*[!a-z0-9]*) echo "GITOPS_SIM_PREFIX must be lowercase letters and digits" >&2; exit 2;;
esac
[ ${#prefix} -le 8 ] || { echo "GITOPS_SIM_PREFIX is at most 8 characters" >&2; exit 2; }
run_root=/run/gitops-sim/$prefix
data_root=/var/lib/gitops-sim/$prefix
cache=/var/cache/gitops-sim
bridge=$prefix-br
images=${GITOPS_SIM_IMAGES:-gitops/busybox:1 gitops/pause:1 gitops/python:3.11}
dead_proxy=http://127.0.0.1:9     # discard port: nothing listens, every pull fails at once

die() { echo "sim-hosts: $*" >&2; exit 2; }
need_root() { [ "$(id -u)" = 0 ] || die "needs root (network namespaces, dockerd)"; }
netns_of() { echo "$prefix-$1"; }
sock_of() { echo "unix://$run_root/$1/docker.sock"; }

# -- state ------------------------------------------------------------------------------
# $run_root/hosts: "NAME ADDRESS" per line; $run_root/subnet: the segment's /24.
host_line() {
  [ -f "$run_root/hosts" ] || die "no simulated hosts (run: sim-hosts.sh up N)"
  local line
  line=$(awk -v h="$1" '$1 == h' "$run_root/hosts")
  [ -n "$line" ] || die "no simulated host $1 (have: $(cut -d' ' -f1 "$run_root/hosts" | xargs))"
  echo "$line"
}

# -- a free /24 for the segment ---------------------------------------------------------
subnet_in_use() {     # $1 = a.b.c (the /24's first three octets)
  ip -4 route show | awk '{print $1}' | grep -q "^$1\." && return 0
  ip -4 addr show | grep -q "inet $1\." && return 0
  return 1
}

pick_subnet() {
  local third
  for third in $(seq 0 255); do
    if ! subnet_in_use "10.77.$third"; then echo "10.77.$third"; return; fi
  done
  die "no free /24 in 10.77.0.0/16"
}

# -- images -----------------------------------------------------------------------------
image_archive() {     # the local engine's images as one archive, cached by their ids
  local ids key archive
  ids=$(docker image inspect --format '{{.Id}}' $images) \
    || die "images missing on $DOCKER_HOST: $images (run scripts/build-images.sh)"
  key=$(echo "$ids" | sha256sum | cut -c1-16)
  archive=$cache/images-$key.tar
  mkdir -p "$cache"
  (
    flock 8     # runs under other prefixes share the cache: one writes it, the others wait
    if [ ! -s "$archive" ]; then
      find "$cache" -name 'images-*.tar' ! -name "images-$key.tar" -delete
      docker save $images -o "$archive.tmp.$$"
      mv "$archive.tmp.$$" "$archive"
    fi
  ) 8>"$cache/.lock"
  echo "$archive"
}

# -- up ---------------------------------------------------------------------------------
start_dockerd() {     # $1 = host name
  local h=$1 dir=$run_root/$1
  mkdir -p "$dir" "$data_root/$h"
  nsenter --net="/var/run/netns/$(netns_of "$h")" \
    env HTTP_PROXY=$dead_proxy HTTPS_PROXY=$dead_proxy NO_PROXY= \
    setsid dockerd \
      --host "$(sock_of "$h")" \
      --data-root "$data_root/$h" \
      --exec-root "$dir/exec" \
      --pidfile "$dir/docker.pid" \
      --cgroup-parent "/$prefix-$h" \
      --iptables=false --ip6tables=false --ip-masq=false --bridge=none \
      --registry-mirror "$dead_proxy" \
      </dev/null >"$dir/dockerd.log" 2>&1 &
}

wait_dockerd() {
  local h=$1
  for _ in $(seq 1 120); do
    if DOCKER_HOST=$(sock_of "$h") timeout 5 docker version >/dev/null 2>&1; then return; fi
    sleep 0.5
  done
  tail -n 20 "$run_root/$h/dockerd.log" >&2
  die "dockerd of $h did not come up (log: $run_root/$h/dockerd.log)"
}

up() {
  local n=${1:-}
  [[ "$n" =~ ^[1-9][0-9]?$ ]] || die "usage: sim-hosts.sh up N (1..99)"
  need_root
  [ ! -e "$run_root/hosts" ] || die "simulated hosts are up already (sim-hosts.sh down first)"
  command -v dockerd >/dev/null || die "dockerd is missing (scripts/start-docker.sh installs it)"
  command -v nsenter >/dev/null || die "nsenter is missing (apt-get install util-linux)"
  local archive net i h
  archive=$(image_archive)
  mkdir -p "$run_root"
  # The machine's own end of the segment: .254, so tests and kubectl reach every host.
  # Picking a free /24 and taking it is one step under a lock: two runs under different
  # prefixes starting at once must not both see the same /24 free.
  exec 9>/run/gitops-sim/.subnet.lock
  flock 9
  net=$(pick_subnet)
  ip link add "$bridge" type bridge
  ip addr add "$net.254/24" dev "$bridge"
  flock -u 9
  exec 9>&-
  echo "$net.0/24" >"$run_root/subnet"
  : >"$run_root/hosts"
  ip link set "$bridge" up
  for i in $(seq 1 "$n"); do
    h=h$i
    ip netns add "$(netns_of "$h")"
    ip link add "$prefix-$h" type veth peer name eth0 netns "$(netns_of "$h")"
    ip link set "$prefix-$h" master "$bridge" up
    nsenter --net="/var/run/netns/$(netns_of "$h")" sh -c "
      ip link set lo up && ip addr add $net.$i/24 dev eth0 && ip link set eth0 up &&
      sysctl -qw net.ipv4.ip_forward=1"
    echo "$h $net.$i" >>"$run_root/hosts"
    start_dockerd "$h"
  done
  for i in $(seq 1 "$n"); do
    h=h$i
    wait_dockerd "$h"
    DOCKER_HOST=$(sock_of "$h") docker load -q -i "$archive" >/dev/null
    echo "$h $net.$i $(sock_of "$h")"
  done
}

# -- down -------------------------------------------------------------------------------
pids_using() {        # processes whose command line names our run or data root
  grep -laE "(/run|/var/lib)/gitops-sim/$prefix/" /proc/[0-9]*/cmdline 2>/dev/null \
    | cut -d/ -f3 || true
}

pids_in_netns() {     # processes inside our namespaces (agents, servers, containers)
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-h[0-9]*$" || true); do
    ip netns pids "$ns" 2>/dev/null || true
  done
}

pids_in_cgroups() {   # container processes under our cgroup parents
  { find /sys/fs/cgroup -maxdepth 3 -type d -name "$prefix-h*" 2>/dev/null || true; } \
    | while read -r d; do
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done
}

kill_all() {          # $1 = signal
  local pids
  pids=$( { pids_in_netns; pids_in_cgroups; pids_using; } | sort -u | grep -vx "$$" || true)
  [ -n "$pids" ] || return 1
  kill "-$1" $pids 2>/dev/null || true
  return 0
}

down() {
  need_root
  local h sock
  # Containers first, while each engine still answers: the engine stops them cleanly.
  if [ -f "$run_root/hosts" ]; then
    for h in $(cut -d' ' -f1 "$run_root/hosts"); do
      sock=$(sock_of "$h")
      [ -S "${sock#unix://}" ] || continue
      ids=$(DOCKER_HOST=$sock timeout 10 docker ps -aq 2>/dev/null || true)
      [ -z "$ids" ] || DOCKER_HOST=$sock timeout 30 docker rm -f $ids >/dev/null 2>&1 || true
    done
  fi
  # Then every process of ours: TERM, a grace, KILL.
  if kill_all TERM; then
    for _ in $(seq 1 10); do
      [ -z "$( { pids_in_netns; pids_using; } | grep -vx "$$" || true)" ] && break
      sleep 0.5
    done
    kill_all KILL || true
    sleep 0.5
  fi
  # Mounts dockerd left (overlay layers, netns files), deepest first.
  { awk '{print $2}' /proc/mounts | grep -E "^(/run|/var/lib)/gitops-sim/$prefix(/|$)" || true; } \
    | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-h[0-9]*$" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 \
                | grep -E "^$prefix-(br|h[0-9]+)$" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  { find /sys/fs/cgroup -maxdepth 3 -type d -name "$prefix-h*" 2>/dev/null || true; } \
    | sort -r | while read -r d; do
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      done
  rm -rf "$run_root" "$data_root"
}

# -- commands ---------------------------------------------------------------------------
cmd=${1:-}
shift || true
case "$cmd" in
  up) up "$@" ;;
  down) down ;;
  addr)
    [ $# -eq 1 ] || die "usage: sim-hosts.sh addr HOST"
    host_line "$1" | cut -d' ' -f2 ;;
  list)
    [ -f "$run_root/hosts" ] || exit 0
    while read -r h a; do echo "$h $a $(sock_of "$h")"; done <"$run_root/hosts" ;;
  exec)
    [ $# -ge 2 ] || die "usage: sim-hosts.sh exec HOST CMD..."
    h=$1; shift
    host_line "$h" >/dev/null
    exec nsenter --net="/var/run/netns/$(netns_of "$h")" \
      env DOCKER_HOST="$(sock_of "$h")" GITOPS_SIM_HOST="$h" "$@" ;;
  *) die "usage: sim-hosts.sh up N | addr HOST | exec HOST CMD... | list | down" ;;
esac
