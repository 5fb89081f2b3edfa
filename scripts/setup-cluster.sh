#!/usr/bin/env bash
# What several hosts (and scripts/sim-hosts.sh) need beyond scripts/setup.sh, on a fresh
# Debian/Ubuntu machine: iproute2 (ip: routes to the other nodes' pod CIDRs, network
# namespaces), util-linux (nsenter) and kmod/bridge support, plus the engine and images.
# Run it as root on every host: `scripts/setup-cluster.sh`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ "$(id -u)" = 0 ] || { echo "setup-cluster.sh needs root (packages, routes)" >&2; exit 2; }
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The package, engine and images (skipped when the caller, scripts/test.sh, did that).
[ -n "${GITOPS_SKIP_BASE_SETUP:-}" ] || "$here/setup.sh"
# ip_forward: the agent turns it on when it starts as a cluster's node.
echo "ready: ip $(ip -V | awk '{print $NF}'), nsenter"
