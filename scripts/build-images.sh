#!/usr/bin/env bash
# Build, locally, every image the tests and example-repo/ use. No registry is involved:
# images are made from Debian's static busybox and imported with `docker import`.
#   gitops/pause:1          the pod sandbox (holds a pod's network namespace)
#   gitops/busybox:1        a tiny shell + httpd + nc image for examples and tests
# Pass --force to rebuild images that already exist.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/docker-env.sh"
force=${1:-}

have() { [ "$force" != "--force" ] && docker image inspect "$1" >/dev/null 2>&1; }

busybox_bin() {      # a static busybox: it must run inside images with no libc
  local linkage
  linkage=$(ldd /bin/busybox 2>&1 || true)
  if [ ! -x /bin/busybox ] || [[ "$linkage" != *"not a dynamic"* ]]; then
    echo "installing busybox-static from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
  fi
  echo /bin/busybox
}

busybox_rootfs() {   # $1: target dir
  local root=$1 bb
  bb=$(busybox_bin)
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/www" "$root/data"
  chmod 1777 "$root/tmp"
  cp "$bb" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! have gitops/pause:1; then
  mkdir -p "$work/pause"
  cp "$(busybox_bin)" "$work/pause/busybox"
  tar -C "$work/pause" -c . | docker import \
    -c 'ENTRYPOINT ["/busybox", "sleep", "2147483647"]' - gitops/pause:1 >/dev/null
  echo "built gitops/pause:1"
fi

if ! have gitops/busybox:1; then
  busybox_rootfs "$work/busybox"
  tar -C "$work/busybox" -c . | docker import \
    -c 'ENV PATH=/bin' -c 'WORKDIR /' -c 'CMD ["/bin/sh"]' - gitops/busybox:1 >/dev/null
  echo "built gitops/busybox:1"
fi
