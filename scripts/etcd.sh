#!/usr/bin/env bash
# A local etcd cluster for the HA store: Debian's etcd-server (installed from Debian if
# missing, never downloaded otherwise), 1 or 3 members on loopback, each with its own data
# dir under DIR.
#
#   scripts/etcd.sh install                      # apt-get install etcd-server if missing
#   scripts/etcd.sh start DIR [MEMBERS] [PORT]   # MEMBERS 1|3 (1), client ports PORT,
#                                                # PORT+2, ... peers PORT+1, PORT+3 (2379)
#   scripts/etcd.sh stop DIR                     # stop every member and remove DIR
#   scripts/etcd.sh kill DIR N / start-member DIR N   # chaos: kill -9 member N, start it again
#
# `start` prints the datastore URL (etcd://127.0.0.1:2379,...) once every member answers.
# GITOPS_ETCD_HOST (at `start`) is the address members listen on instead of 127.0.0.1,
# e.g. simulated hosts' bridge address (scripts/sim-hosts.sh), so servers there reach it.
# It first stops whatever a crashed run left in DIR. `stop` kills only processes whose pid
# file is in DIR and whose command line names DIR, so it is safe after a crash or reboot.
set -euo pipefail

install_etcd() {
  command -v etcd >/dev/null 2>&1 && return 0
  echo "installing etcd-server from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
}

member_pid() {   # the live pid of member N in DIR, if any
  local dir=$1 n=$2 pid
  [ -f "$dir/m$n.pid" ] || return 1
  pid=$(cat "$dir/m$n.pid")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--data-dir $dir/m$n.data" || return 1
  echo "$pid"
}

kill_member() {
  local dir=$1 n=$2 pid
  pid=$(member_pid "$dir" "$n") || { rm -f "$dir/m$n.pid"; return 0; }
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.05; done
  rm -f "$dir/m$n.pid"
}

start_member() {
  local dir=$1 n=$2
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  local client=$((PORT + 2 * n)) peer=$((PORT + 2 * n + 1)) state=new host=${HOST:-127.0.0.1}
  # a member that has data rejoins its cluster
  [ -d "$dir/m$n.data/member" ] && state=existing
  setsid etcd --name "m$n" --data-dir "$dir/m$n.data" \
    --listen-client-urls "http://$host:$client" \
    --advertise-client-urls "http://$host:$client" \
    --listen-peer-urls "http://$host:$peer" \
    --initial-advertise-peer-urls "http://$host:$peer" \
    --initial-cluster "$CLUSTER" --initial-cluster-token "$TOKEN" \
    --initial-cluster-state "$state" --log-level warn --logger zap \
    --enable-v2=false --auto-compaction-mode revision --auto-compaction-retention 100000 \
    --max-txn-ops 10000 --max-request-bytes 33554432 \
    </dev/null >>"$dir/m$n.log" 2>&1 &
  echo $! >"$dir/m$n.pid"
}

wait_healthy() {   # until every live member answers, at most 30 s
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  local deadline=$((SECONDS + 30)) n ok
  while :; do
    ok=1
    for n in $(seq 0 $((MEMBERS - 1))); do
      member_pid "$dir" "$n" >/dev/null || continue
      curl -fsS --max-time 1 "http://${HOST:-127.0.0.1}:$((PORT + 2 * n))/health" 2>/dev/null \
        | grep -q '"health":"true"' || ok=0
    done
    [ "$ok" = 1 ] && return 0
    if [ $SECONDS -ge $deadline ]; then
      echo "etcd did not become healthy; logs in $dir/m*.log:" >&2
      tail -n 20 "$dir"/m*.log >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

stop_all() {
  local dir=$1 f
  [ -d "$dir" ] || return 0
  for f in "$dir"/m*.pid; do
    [ -e "$f" ] || continue
    f=${f##*/m}
    kill_member "$dir" "${f%.pid}"
  done
}

cmd=${1:-}
case "$cmd" in
  install) install_etcd ;;
  start)
    dir=$(realpath -m "${2:?DIR}")
    members=${3:-1}
    port=${4:-2379}
    [ "$members" = 1 ] || [ "$members" = 3 ] || { echo "MEMBERS must be 1 or 3" >&2; exit 2; }
    install_etcd
    stop_all "$dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    chmod 700 "$dir"
    cluster="" urls="" host=${GITOPS_ETCD_HOST:-127.0.0.1}
    for n in $(seq 0 $((members - 1))); do
      cluster+="${cluster:+,}m$n=http://$host:$((port + 2 * n + 1))"
      urls+="${urls:+,}$host:$((port + 2 * n))"
    done
    printf 'MEMBERS=%s\nPORT=%s\nCLUSTER=%s\nTOKEN=%s\nHOST=%s\n' \
      "$members" "$port" "$cluster" "gitops-$$-$RANDOM" "$host" >"$dir/cluster.env"
    for n in $(seq 0 $((members - 1))); do start_member "$dir" "$n"; done
    wait_healthy "$dir" || { stop_all "$dir"; exit 1; }
    echo "etcd://$urls"
    ;;
  kill) kill_member "$(realpath -m "${2:?DIR}")" "${3:?N}" ;;
  start-member)
    dir=$(realpath -m "${2:?DIR}")
    start_member "$dir" "${3:?N}"
    ;;
  stop)
    dir=$(realpath -m "${2:?DIR}")
    stop_all "$dir"
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 install | start DIR [1|3] [PORT] | stop DIR | kill DIR N |" \
      "start-member DIR N" >&2
    exit 2
    ;;
esac
