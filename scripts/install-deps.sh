#!/usr/bin/env bash
# Installs what pggw needs to build, run and test on Debian 12, from Debian's packages only.
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config
  libboost1.81-dev android-libboringssl-dev libwolfssl-dev prometheus-cpp-dev
  libtomlplusplus-dev libcli11-dev libspdlog-dev libgtest-dev libbenchmark-dev
  postgresql-15 postgresql-client-15 openssl iproute2 procps curl
  python3 python3-pytest python3-psycopg2 python3-yaml prometheus haproxy
  yamllint podman buildah runc crun catatonit fuse-overlayfs slirp4netns uidmap
  containernetworking-plugins iptables debootstrap
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
