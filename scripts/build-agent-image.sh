#!/usr/bin/env bash
# Build the agent's image from a local base, with no registry and no network in the build:
# wheels of the package and its dependencies are made here (pip reaches PyPI) and copied
# into the build context; see the Dockerfile.
#   scripts/build-agent-image.sh [--base IMAGE] [--tag TAG] [--extras LIST] [--label K=V]...
# Defaults: --base gitops/python:3.11 (scripts/build-images.sh builds it),
#           --tag gitops/agent:<version>, --extras kustomize,sops ("" for none).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/docker-env.sh"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$top/pyproject.toml")
base=gitops/python:3.11 tag=gitops/agent:$version extras=kustomize,sops
labels=()
while [ $# -gt 0 ]; do
  case $1 in
    --base) base=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --extras) extras=$2; shift 2 ;;
    --label) labels+=(--label "$2"); shift 2 ;;
    *) echo "usage: $0 [--base IMAGE] [--tag TAG] [--extras LIST] [--label K=V]..." >&2
       exit 2 ;;
  esac
done
docker image inspect "$base" >/dev/null 2>&1 || "$here/build-images.sh"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
pip=(python3 -m pip --disable-pip-version-check --quiet)
# The package itself (pure Python), then every dependency as a wheel for the image's
# Python (3.11 on x86-64 glibc), whatever the host's Python is.
# (Requirements name the wheel file: a different project is called "gitops" on PyPI.)
"${pip[@]}" wheel --no-deps --wheel-dir "$ctx/wheels" "$top"
wheel=$(ls "$ctx"/wheels/gitops-"$version"-*.whl)
"${pip[@]}" download --dest "$ctx/wheels" --only-binary=:all: --python-version 3.11 \
  --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform linux_x86_64 --platform any \
  "$wheel${extras:+[$extras]}" pip
cp "$top/Dockerfile" "$ctx/"
# The legacy builder needs no buildx plugin; the build runs without a network.
DOCKER_BUILDKIT=0 docker build --quiet --force-rm --network none --build-arg "BASE=$base" \
  --build-arg "EXTRAS=$extras" "${labels[@]}" -t "$tag" "$ctx" >/dev/null 2>"$ctx/build.log" \
  || { grep -v '^DEPRECATED\|BuildKit\|environment-variable' "$ctx/build.log" >&2; exit 1; }
echo "built $tag from $base"
