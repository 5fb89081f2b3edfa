#!/usr/bin/env bash
# Remake gitops/api/kube/k8s-1.32.desc: the protobuf descriptors of Kubernetes 1.32's
# built-in kinds, read by gitops/api/kube/protobuf.py. Needs grpcio-tools (protoc) and
# checkouts of k8s.io/api and k8s.io/apimachinery at a v0.32 tag:
#   scripts/gen-kube-proto.sh PATH/TO/api PATH/TO/apimachinery
set -euo pipefail
api=$(cd "$1" && pwd); machinery=$(cd "$2" && pwd)
out=$(cd "$(dirname "$0")/.." && pwd)/gitops/api/kube/k8s-1.32.desc
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root/k8s.io"
ln -s "$api" "$root/k8s.io/api"
ln -s "$machinery" "$root/k8s.io/apimachinery"
groups="core/v1 apps/v1 batch/v1 rbac/v1 networking/v1 policy/v1 scheduling/v1 autoscaling/v2
        coordination/v1 discovery/v1 storage/v1 node/v1 certificates/v1
        admissionregistration/v1 flowcontrol/v1"
files=()
for g in $groups; do files+=("k8s.io/api/$g/generated.proto"); done
(cd "$root" && python -m grpc_tools.protoc -I . --include_imports \
    --descriptor_set_out="$out" "${files[@]}")
echo "wrote $out"
