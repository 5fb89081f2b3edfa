#!/usr/bin/env bash
# The main job: set up the machine if needed, then run an agent that deploys example-repo/
# on the local Docker engine and wait until every object is healthy.
#   scripts/run-example.sh               # background agent (stop it with `gitops down`)
#   scripts/run-example.sh --foreground  # the agent in this terminal, JSON logs, Ctrl-C stops
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/setup.sh"
cd "$top"
if [ "${1:-}" = "--foreground" ]; then
  exec python3 -m gitops run --repo example-repo --data-dir .gitops --interval 15 --log-format json
fi
python3 -m gitops up example-repo --wait --timeout 180 --data-dir .gitops --interval 15
python3 -m gitops status --data-dir .gitops
echo
echo "web front end: curl http://127.0.0.1:30080/ (or open it in a browser)"
echo "stop and clean up: gitops down --volumes --data-dir .gitops"
