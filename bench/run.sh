#!/usr/bin/env bash
# Every benchmark of this directory, one after the other, each printing its tables:
# relay.sh (relayed queries per proxy CPU-second), handshakes.sh (handshakes and full sessions
# per proxy CPU-second), memory.sh (RSS per idle TLS session, N=1000 against PostgreSQL, then
# N=5000 against bench/pg_stub.py), bulk.sh (proxy CPU-seconds per GB of a 1 GiB COPY TO
# STDOUT over TLS, and the TLS record sizes written toward the client; about 1 minute),
# handshake_floor.sh (pggw's TLS handshake CPU against an in-memory handshake plus a plaintext
# connection; ~30 s), syscalls.sh (system calls per relayed query, per full session and per
# TLS handshake, strace -c, for pggw TLS and plaintext, HAProxy and PgBouncer). 676 s on the
# 2-vCPU machine (2026-12-07, load 0.04 before, without the per-handshake count, which adds
# ~10 s; 715 s earlier that day at load 1-10).
#
# --smoke: every script once with tiny sizes (one round, 1-2 s runs, 20 sessions, 4 MiB
# copies; 88 s measured in a fresh Debian 12 container on the 2-vCPU machine), to prove that
# the scripts still run; its figures mean nothing.
#
# usage: bench/run.sh [--smoke]     env: PGGW_BUILD (default build-bench), BASE_BUILD=
# Build first: cmake --build $PGGW_BUILD --target pggw handshake_load handshake_floor
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
smoke=0
[[ ${1:-} == --smoke ]] && smoke=1

run() {  # run NAME [VAR=value...] -- script
    local name=$1
    shift
    echo "### $name"
    env "$@" || { echo "FAILED: $name" >&2; exit 1; }
    echo
}

if ((smoke)); then
    run relay R=1 T=2 CLIENTS=2 THREADS=1 VARIANTS="direct_tls pggw_boringssl pggw_wolfssl pggw_plain" \
        "$here/relay.sh"
    run handshakes R=1 T=1 HS_THREADS=1 CLIENTS=1 "$here/handshakes.sh"
    run memory N=20 GEN_THREADS=2 "$here/memory.sh"
    run memory-stub N=20 GEN_THREADS=2 SERVER=stub "$here/memory.sh"
    run bulk R=1 SIZE_MB=4 RECORD_MB=1 "$here/bulk.sh"
    run handshake-floor R=1 N=20 "$here/handshake_floor.sh"
    run syscalls TXNS=20 CLIENTS=2 "$here/syscalls.sh"
    run syscalls-sessions TXNS=10 CLIENTS=2 SESSIONS=1 "$here/syscalls.sh"
    run syscalls-handshakes TXNS=20 HANDSHAKES=1 "$here/syscalls.sh"
else
    run relay "$here/relay.sh"
    run handshakes "$here/handshakes.sh"
    run memory N=1000 "$here/memory.sh"
    run memory-5000 N=5000 SERVER=stub "$here/memory.sh"
    run bulk "$here/bulk.sh"
    run handshake-floor "$here/handshake_floor.sh"
    run syscalls "$here/syscalls.sh"
    run syscalls-sessions SESSIONS=1 "$here/syscalls.sh"
    run syscalls-handshakes TXNS=1000 HANDSHAKES=1 "$here/syscalls.sh"
fi
