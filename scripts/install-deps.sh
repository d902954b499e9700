#!/usr/bin/env bash
# Installs what pggw needs to build, run and test on Debian 12, from Debian's packages only.
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config
  libboost1.81-dev android-libboringssl-dev libwolfssl-dev prometheus-cpp-dev
  libtomlplusplus-dev libcli11-dev libspdlog-dev libidn-dev libgtest-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev
  postgresql-15 postgresql-client-15 openssl iproute2 procps curl
  python3 python3-pytest python3-psycopg2 python3-yaml prometheus haproxy bsdextrautils
  pgbouncer strace  # bench/: the PgBouncer rows; syscalls.sh (bsdextrautils: column, the raw tables)
  openjdk-17-jdk-headless libpostgresql-jdbc-java nodejs
  yamllint podman buildah runc crun catatonit fuse-overlayfs slirp4netns uidmap
  containernetworking-plugins iptables debootstrap
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# pgbouncer and haproxy are here for bench/, which starts its own instances. On a systemd host
# Debian enables and starts their services on install, and PgBouncer's listens on localhost:6432,
# the port demo.sh gives pggw. Stop and disable the services of what this run installed; one that
# was installed before is left as it was.
if [ -d /run/systemd/system ]; then
  for svc in pgbouncer haproxy; do
    if [[ " ${missing[*]} " == *" $svc "* ]]; then
      if $sudo systemctl disable --now "$svc.service" >/dev/null 2>&1; then
        echo "$svc: its system service (started by apt) is stopped and disabled; bench/ runs its own"
      else
        echo "$svc: could not stop its system service (systemctl disable --now $svc.service)" >&2
      fi
    fi
  done
fi

# node-postgres for tests/integration/test_scram_gateway.py: Debian's node-pg (with the two
# modules it needs that it does not bundle), unpacked rather than installed, because its
# dependencies require Debian's own nodejs package and a machine may have another Node.js.
node_pg=/usr/local/lib/pggw-test/node-pg
if [ ! -f "$node_pg/usr/share/nodejs/pg/package.json" ]; then
  echo "unpacking node-pg into $node_pg"
  tmp=$(mktemp -d)
  chmod 755 "$tmp"  # apt-get download runs as _apt where it can
  (cd "$tmp" && { apt-get download -qq node-pg node-split2 node-xtend 2>/dev/null ||
                  { $sudo apt-get update -qq && apt-get download -qq node-pg node-split2 node-xtend; }; })
  $sudo mkdir -p "$node_pg"
  for deb in "$tmp"/*.deb; do $sudo dpkg-deb -x "$deb" "$node_pg"; done
  rm -rf "$tmp"
fi
