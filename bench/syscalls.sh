#!/usr/bin/env bash
# System calls per relayed query: strace -c -f attached to the proxy during a fixed
# `pgbench -S -t TXNS -c CLIENTS -j 1`, for pggw boringssl (TLS), pggw --client-tls disable,
# HAProxy (mode tcp, nbthread 1: plaintext relay of the client's end-to-end TLS) and
# PgBouncer (TLS). Counts, unlike timings, do not move with the machine's load. BASE_BUILD=dir
# adds the same two pggw rows from another build.
# SESSIONS=1: system calls per full session instead (pgbench -C: every transaction is a new
# connection: TLS handshake, startup, one query, Terminate, close). pggw opens a server
# connection per session; PgBouncer reuses its pooled ones, so its row shows the client side
# only, which is the point of the comparison.
# HANDSHAKES=1: system calls per TLS handshake instead (handshake_load --mode handshake
# --threads 1: connect, SSLRequest, TLS 1.3 handshake, close; TXNS handshakes), for the TLS
# rows only: pggw boringssl (and its BASE_BUILD row) and PgBouncer.
#
# usage: bench/syscalls.sh     env: TXNS=500 CLIENTS=4 PORT_BASE=27400 BASE_BUILD= SESSIONS=0
#                                   HANDSHAKES=0
source "$(dirname "$0")/common.sh"
TXNS=${TXNS:-500}
CLIENTS=${CLIENTS:-4}
BASE_BUILD=${BASE_BUILD:-}
SESSIONS=${SESSIONS:-0}
HANDSHAKES=${HANDSHAKES:-0}
CONNECT=()
what="query"
load="pgbench -S -t $TXNS -c $CLIENTS -j 1"
((SESSIONS)) && CONNECT=(-C) && what="session (pgbench -C: connect, one query, close)" &&
    load="$load -C"
((HANDSHAKES)) && what="TLS handshake" && load="handshake_load --mode handshake --threads 1 --count $TXNS"
command -v strace >/dev/null || die "strace not installed"
((HANDSHAKES)) && { [[ -x $LOADGEN ]] || die "$LOADGEN not built"; }

machine_line
make_certs
start_pg "$PORT_BASE"
pgbench_init
# HANDSHAKES=1 counts TLS handshakes: no plaintext rows, no HAProxy (the client's TLS is not its).
VARIANTS="pggw_boringssl"
start_pggw pggw_boringssl $((PORT_BASE + 1)) $((PORT_BASE + 51)) boringssl 1
declare -A PORT=([pggw_boringssl]=$((PORT_BASE + 1)))
declare -A SSL=([pggw_boringssl]=require)
if ((!HANDSHAKES)); then
    start_pggw pggw_plain $((PORT_BASE + 4)) $((PORT_BASE + 54)) boringssl 1 --client-tls disable
    PORT[pggw_plain]=$((PORT_BASE + 4)); SSL[pggw_plain]=disable
    VARIANTS="$VARIANTS pggw_plain"
fi
if [[ -n $BASE_BUILD ]]; then
    PGGW_BIN=$BASE_BUILD/pggw start_pggw pggw_boringssl_base $((PORT_BASE + 8)) $((PORT_BASE + 58)) boringssl 1
    PORT[pggw_boringssl_base]=$((PORT_BASE + 8)); SSL[pggw_boringssl_base]=require
    VARIANTS="$VARIANTS pggw_boringssl_base"
    if ((!HANDSHAKES)); then
        PGGW_BIN=$BASE_BUILD/pggw start_pggw pggw_plain_base $((PORT_BASE + 9)) $((PORT_BASE + 59)) boringssl 1 --client-tls disable
        PORT[pggw_plain_base]=$((PORT_BASE + 9)); SSL[pggw_plain_base]=disable
        VARIANTS="$VARIANTS pggw_plain_base"
    fi
fi
if have_haproxy && ((!HANDSHAKES)); then
    start_haproxy haproxy $((PORT_BASE + 7)); PORT[haproxy]=$((PORT_BASE + 7)); SSL[haproxy]=require
    VARIANTS="$VARIANTS haproxy"
fi
if have_pgbouncer; then
    start_pgbouncer pgbouncer $((PORT_BASE + 5)) session 20; PORT[pgbouncer]=$((PORT_BASE + 5))
    SSL[pgbouncer]=require
    VARIANTS="$VARIANTS pgbouncer"
fi

echo "## system calls per $what (strace -c -f; $load)"
printf '%-22s %8s %10s  %s\n' variant count calls/each "top calls per $what"
for v in $VARIANTS; do
    pidvar=PID_$v
    pid=${!pidvar}
    # Warm the pool / the connections' first queries outside the count.
    PGSSLMODE=${SSL[$v]} pgbench -h 127.0.0.1 -p "${PORT[$v]}" -U postgres -n -S -t 20 \
        -c "$CLIENTS" -j 1 postgres >/dev/null 2>&1
    strace -c -f -q -p "$pid" -o "$WORK/$v.strace" &
    spid=$!
    STARTED_PIDS+=("$spid")
    sleep 1
    if ((HANDSHAKES)); then
        out=$("$LOADGEN" --port "${PORT[$v]}" --mode handshake --threads 1 --count "$TXNS" \
            --tls-library boringssl 2>&1) || { echo "$out"; die "$v: handshake_load"; }
        q=$(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' <<<"$out")
    else
        out=$(PGSSLMODE=${SSL[$v]} pgbench -h 127.0.0.1 -p "${PORT[$v]}" -U postgres -n -S \
            -t "$TXNS" -c "$CLIENTS" -j 1 "${CONNECT[@]}" postgres 2>&1) || { echo "$out"; die "$v: pgbench"; }
        q=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
    fi
    kill -INT "$spid"
    wait "$spid" 2>/dev/null || true
    awk -v q="$q" -v v="$v" '
        $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {c[$NF] = $4}
        $NF == "total" {tot = $4}
        END {
            n = 0; for (k in c) keys[n++] = k
            # sort names by count, descending
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (c[keys[j]] + 0 > c[keys[i]] + 0) {t = keys[i]; keys[i] = keys[j]; keys[j] = t}
            s = ""; for (i = 0; i < n && i < 8; i++) s = s sprintf("%s %.2f  ", keys[i], c[keys[i]] / q)
            printf "%-22s %8d %10.2f  %s\n", v, q, tot / q, s
        }' "$WORK/$v.strace"
done
machine_line
