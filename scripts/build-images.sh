#!/usr/bin/env bash
# Build, locally, every image the tests and example-repo/ use. No registry is involved:
# images are made from Debian packages and imported with `docker import`.
#   gitops/pause:1          the pod sandbox (holds a pod's network namespace)
#   gitops/busybox:1        a tiny shell + httpd + nc image for examples and tests
#   gitops/python:3.11      Debian bookworm minbase + python3 (3.11), for example-repo/
# Pass --force to rebuild images that already exist (the python rootfs comes from its cached
# tarball); --refresh also rebuilds that tarball with debootstrap.
# GITOPS_IMAGE_CACHE (default /var/cache/gitops-images) holds the rootfs tarball and .debs;
# GITOPS_DEBIAN_MIRROR (default http://deb.debian.org/debian) is where debootstrap fetches.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/docker-env.sh"
force= refresh=
for arg in "$@"; do
  case $arg in
    --force) force=--force ;;
    --refresh) force=--force refresh=1 ;;
    *) echo "usage: $0 [--force] [--refresh]" >&2; exit 2 ;;
  esac
done
cache=${GITOPS_IMAGE_CACHE:-/var/cache/gitops-images}
mirror=${GITOPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}

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
cleanup() {   # debootstrap unmounts what it mounted; this only guards against a crash
  awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

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

# Python: bookworm ships python3 3.11; the tag says so and the build checks it.
py_suite=bookworm py_version=3.11
py_image=gitops/python:$py_version
py_tarball=$cache/python-$py_suite-rootfs.tar

python_rootfs() {    # $1: target dir; a trimmed Debian minbase with python3
  local root=$1
  if ! command -v debootstrap >/dev/null; then
    echo "installing debootstrap from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  mkdir -p "$cache/debs"
  echo "debootstrap $py_suite (minbase + python3) from $mirror" >&2
  debootstrap --variant=minbase --include=python3-minimal,python3 \
    --cache-dir="$cache/debs" "$py_suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; return 1; }
  local got
  got=$(chroot "$root" python3 -c 'import sys, sqlite3; print("%d.%d" % sys.version_info[:2])')
  if [ "$got" != "$py_version" ]; then
    echo "$py_suite ships python $got, not $py_version: change py_version" >&2
    return 1
  fi
  # Trim what a container never needs: package caches and lists, docs, man pages,
  # locales, glibc's iconv modules (python has its own codecs), logs, byte-code caches
  # (python compiles in memory: ~0.2 s at start), the host's resolver, device nodes.
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/usr/share/common-licenses \
    "$root"/usr/lib/*-linux-gnu/gconv "$root"/var/log/* "$root"/dev/* "$root"/run/* \
    "$root"/tmp/* "$root"/debootstrap
  find "$root/usr" -depth -name __pycache__ -type d -exec rm -rf {} +
  : >"$root/etc/resolv.conf"
  printf 'localhost\n' >"$root/etc/hostname"
  mkdir -p "$root/app" "$root/data"
}

if ! have "$py_image"; then
  start=$SECONDS
  if [ -n "$refresh" ] || [ ! -s "$py_tarball" ]; then
    python_rootfs "$work/python"
    mkdir -p "$cache"
    tar -C "$work/python" --numeric-owner -cf "$py_tarball.tmp" .
    mv "$py_tarball.tmp" "$py_tarball"
    rm -rf "$work/python"
  fi
  docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' -c 'ENV PYTHONUNBUFFERED=1' -c 'ENV PYTHONDONTWRITEBYTECODE=1' \
    -c 'WORKDIR /' -c 'CMD ["python3"]' "$py_tarball" "$py_image" >/dev/null
  echo "built $py_image in $((SECONDS - start))s"
fi
