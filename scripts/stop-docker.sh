#!/usr/bin/env bash
# Stop the engine scripts/start-docker.sh started (and only that one).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/docker-env.sh"
pidfile="$GITOPS_DOCKER_RUN/docker.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
kill "$pid" 2>/dev/null || exit 0
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
kill -9 "$pid" 2>/dev/null || true
