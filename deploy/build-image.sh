#!/usr/bin/env bash
# Builds the pggw container image from deploy/Dockerfile with podman, from Debian packages only.
#
#   deploy/build-image.sh [--tag NAME] [--base IMAGE]
#
# With a registry at hand, `podman build -f deploy/Dockerfile .` (base debian:bookworm-slim) is
# all it takes. This script also works with no registry: it makes a Debian 12 base with
# debootstrap (localhost/debian:bookworm, once, about 3 minutes) and a slim copy of it without
# apt lists, documentation and locales (localhost/pggw-base:bookworm-slim, the equivalent of
# debian:bookworm-slim), and builds on that. Unchanged sources reuse the cached build layers.
#
# Runtime, cgroup and ulimit options are passed on podman's command line (no change to the
# machine's containers.conf). Needs root (debootstrap, and podman's rootful storage).
# Prints the image name and its size on the last line.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^project(pggw VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
tag="localhost/pggw:${version}"
base="${BASE_IMAGE:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    *) echo "usage: $0 [--tag NAME] [--base IMAGE]" >&2; exit 2 ;;
  esac
done

# podman's global options: runc (or crun), cgroupfs (works with or without systemd), and vfs
# storage where /var/lib/containers sits on overlayfs (podman inside a container).
podman_args=(--cgroup-manager cgroupfs)
if command -v runc >/dev/null; then podman_args+=(--runtime runc); fi
store=/var/lib/containers
while [ ! -e "$store" ]; do store=$(dirname "$store"); done
if [ "$(stat -f -c %T "$store")" = overlayfs ]; then podman_args+=(--storage-driver vfs); fi
# The default ulimits (nofile 1048576) exceed what many machines allow: this shell's open-file
# limit, and at most 32768 processes (runc could not set this machine's own hard limit, 96364).
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
ulimits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
P() { podman "${podman_args[@]}" "$@"; }

if [ -z "$base" ]; then
  if ! P image exists localhost/debian:bookworm; then
    [ "$(id -u)" -eq 0 ] || { echo "build-image.sh: debootstrap needs root" >&2; exit 1; }
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    echo "== base: debootstrap --variant=minbase bookworm from $mirror (once; about 3 minutes)"
    rootfs=$(mktemp -d /tmp/pggw-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
      tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1
    fi
    rm -f "$rootfs.log"
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
      rm -f "$rootfs/etc/apt/sources.list"
    fi
    tar -C "$rootfs" -c . | P import --quiet - localhost/debian:bookworm >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
  fi
  base=localhost/pggw-base:bookworm-slim
  from=$(P image inspect --format '{{.Id}}' localhost/debian:bookworm)
  have=$(P image inspect --format '{{index .Labels "org.pggw.base-from"}}' "$base" 2>/dev/null || true)
  if [ "$have" != "$from" ]; then
    echo "== base: $base (localhost/debian:bookworm without apt lists, docs, man pages, locales)"
    cid=$(P create "${ulimits[@]}" --network none localhost/debian:bookworm sh -c \
      'rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
         /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* \
         /var/log/*.log /var/log/apt/*')
    trap 'P rm "$cid" >/dev/null' EXIT
    P start --attach "$cid" >/dev/null
    P export "$cid" | P import --quiet --change 'CMD ["bash"]' --change "LABEL org.pggw.base-from=$from" \
      - "$base" >/dev/null
    P rm "$cid" >/dev/null
    trap - EXIT
  fi
fi

echo "== image: $tag from deploy/Dockerfile on $base"
SECONDS=0
previous=$(P image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
log=$(mktemp /tmp/pggw-image-build.XXXXXX)
if ! P build "${ulimits[@]}" --network host --layers --build-arg "BASE_IMAGE=$base" \
    -f "$ROOT/deploy/Dockerfile" -t "$tag" "$ROOT" >"$log" 2>&1; then
  tail -40 "$log" >&2
  echo "build-image.sh: podman build failed (log: $log)" >&2
  exit 1
fi
rm -f "$log"
# The image this tag named before, now untagged: removed (the build cache stays).
if [ -n "$previous" ] && [ "$previous" != "$(P image inspect --format '{{.Id}}' "$tag")" ]; then
  P rmi "$previous" >/dev/null 2>&1 || true
fi
size=$(P image inspect --format '{{.Size}}' "$tag")
echo "built $tag in ${SECONDS}s: $((size / 1000000)) MB ($size bytes)"
