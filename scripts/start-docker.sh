#!/usr/bin/env bash
# Make a Docker engine reachable at $DOCKER_HOST, installing and starting one if needed.
# The engine started here runs on its own socket and data root, with iptables off and
# no default bridge, so it never touches another engine on the machine. It pulls nothing:
# its proxy and registry mirror are a dead local port, so a pull (an image not built here,
# `nginx:latest`) fails at once and never leaves the machine. GITOPS_DOCKER_PULLS=1 starts
# it able to pull from registries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/docker-env.sh"

engine_up() { timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if engine_up; then
  echo "docker engine reachable at $DOCKER_HOST"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "dockerd is missing and installing it needs root" >&2; exit 2; }
  echo "installing docker.io from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
command -v docker >/dev/null 2>&1 || { echo "no docker client after install" >&2; exit 2; }

case "$DOCKER_HOST" in
  unix://"$GITOPS_DOCKER_RUN"/*) ;;
  *) echo "no engine answers at $DOCKER_HOST and it is not ours to start" >&2; exit 2 ;;
esac

mkdir -p "$GITOPS_DOCKER_RUN" "$GITOPS_DOCKER_ROOT"
dead_proxy=http://127.0.0.1:9     # discard port: nothing listens
pulls=(env HTTP_PROXY=$dead_proxy HTTPS_PROXY=$dead_proxy NO_PROXY=)
mirror=(--registry-mirror "$dead_proxy")
if [ "${GITOPS_DOCKER_PULLS:-0}" = 1 ]; then
  pulls=(env)
  mirror=()
fi
rm -f "$GITOPS_DOCKER_RUN/docker.sock" "$GITOPS_DOCKER_RUN/docker.pid"
# A session of its own: the shell, CI step or job that started it may end (and have its
# process group killed) while the engine serves others.
setsid nohup "${pulls[@]}" dockerd \
  --host "$DOCKER_HOST" \
  --data-root "$GITOPS_DOCKER_ROOT" \
  --exec-root "$GITOPS_DOCKER_RUN/exec" \
  --pidfile "$GITOPS_DOCKER_RUN/docker.pid" \
  --iptables=false --ip6tables=false --ip-masq=false \
  --bridge=none \
  "${mirror[@]}" \
  >"$GITOPS_DOCKER_RUN/dockerd.log" 2>&1 &

for _ in $(seq 1 60); do
  if engine_up; then
    echo "docker engine started at $DOCKER_HOST (log: $GITOPS_DOCKER_RUN/dockerd.log)"
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not come up; last log lines:" >&2
tail -n 20 "$GITOPS_DOCKER_RUN/dockerd.log" >&2
exit 2
