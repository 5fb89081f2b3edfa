#!/usr/bin/env bash
# The test command: set up the machine if needed, then run the whole suite against the
# real Docker engine (a missing engine fails the run instead of skipping tests).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/setup.sh"
cd "$top"
export GITOPS_REQUIRE_DOCKER=1
# tests/cluster (simulated hosts) need root; as root they run, and must not skip.
if [ "$(id -u)" = 0 ]; then
  GITOPS_SKIP_BASE_SETUP=1 "$here/setup-cluster.sh" >/dev/null
  export GITOPS_REQUIRE_CLUSTER=${GITOPS_REQUIRE_CLUSTER:-1}
fi
set +e
python3 -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing the run" >&2
  exit 1
fi
exit "$rc"
