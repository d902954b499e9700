#!/usr/bin/env bash
# Memory per idle TLS session: N sessions (TLS 1.3 handshake, StartupMessage, ReadyForQuery,
# then idle) held open through pggw boringssl, pggw wolfssl (both --workers 1) and PgBouncer
# 1.18 (session pooling: each idle client holds a server connection, as through pggw).
# RSS = VmRSS of the gateway process from /proc/PID/status: after a warm-up of 20 sessions
# opened and closed (before), with the N sessions open (after), and once they are closed.
# KiB per session = (after - before) / N. The gateways are measured one after the other
# against one PostgreSQL 15 (max_connections N+50).
#
# SERVER=stub puts bench/pg_stub.py in place of PostgreSQL (it completes the startup; for N
# beyond what this machine's PostgreSQL can hold: 5000 backends need ~5100 max_connections and
# several GiB). BASE_BUILD=dir adds the pggw of another build (the baseline of a change) as
# pggw_*_base rows, measured next to this build's, in the same run.
#
# usage: bench/memory.sh        env: N=1000 GEN_THREADS=4 PORT_BASE=27400 SERVER=pg|stub
#                                    BASE_BUILD= VARIANTS="pggw_boringssl ..." (a subset)
source "$(dirname "$0")/common.sh"

N=${N:-1000}
GEN_THREADS=${GEN_THREADS:-4}
SERVER=${SERVER:-pg}
BASE_BUILD=${BASE_BUILD:-}
ALL="pggw_boringssl pggw_wolfssl pgbouncer"
[[ -n $BASE_BUILD ]] && ALL="pggw_boringssl_base pggw_boringssl pggw_wolfssl_base pggw_wolfssl pgbouncer"
VARIANTS=${VARIANTS:-$ALL}
have_pgbouncer || VARIANTS=${VARIANTS//pgbouncer/}
export PGB_MAX_CLIENT_CONN=$((N + 100))
[[ -x $LOADGEN ]] || die "$LOADGEN not built (cmake --build $BUILD --target handshake_load)"
(( $(ulimit -n) > 2 * N + 100 )) || ulimit -n $((2 * N + 200)) || die "open-file limit too low for N=$N"

machine_line
make_certs
if [[ $SERVER == stub ]]; then start_stub "$PORT_BASE"; else start_pg "$PORT_BASE" $((N + 50)); fi

RAW=$WORK/memory.tsv
printf 'gateway\tN\topened\tfail\trss_before_kib\trss_after_kib\trss_closed_kib\tkib_per_session\topen_p50_us\topen_p99_us\n' >"$RAW"

measure() {  # measure NAME PORT PID
    local name=$1 port=$2 pid=$3
    "$LOADGEN" --port "$port" --mode startup --threads 2 --count 20 >/dev/null ||
        die "$name: warm-up failed"
    sleep 1
    local before after closed out
    before=$(rss_kib "$pid")
    rm -f "$WORK/ctl"
    mkfifo "$WORK/ctl"
    "$LOADGEN" --port "$port" --mode idle --threads "$GEN_THREADS" --count "$N" \
        <"$WORK/ctl" >"$WORK/$name.idle" 2>&1 &
    local gen=$!
    STARTED_PIDS+=("$gen")
    exec 7>"$WORK/ctl"
    local i
    for ((i = 0; i < 1200; i++)); do
        grep -q '^READY' "$WORK/$name.idle" && break
        kill -0 "$gen" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^READY' "$WORK/$name.idle" || { cat "$WORK/$name.idle"; die "$name: sessions not opened"; }
    sleep 2
    after=$(rss_kib "$pid")
    out=$(head -1 "$WORK/$name.idle")
    exec 7>&-   # EOF on the generator's stdin: it closes every session and exits
    wait "$gen" || true
    sleep 2
    closed=$(rss_kib "$pid")
    local kv ok fail
    kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $out"; }
    ok=$(kv ok); fail=$(kv fail)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$N" "$ok" "$fail" "$before" "$after" \
        "$closed" "$(awk -v a="$before" -v b="$after" -v n="$ok" 'BEGIN {printf "%.1f", (b-a)/n}')" \
        "$(kv p50_us)" "$(kv p99_us)" >>"$RAW"
    log "$name: $ok sessions, RSS $before -> $after KiB (closed: $closed)"
}

i=0
for v in $VARIANTS; do
    i=$((i + 1))
    port=$((PORT_BASE + 10 + i))
    case $v in
    pggw_boringssl | pggw_wolfssl) PGGW_BIN=$PGGW start_pggw $v $port $((PORT_BASE + 60 + i)) \
        ${v#pggw_} 1 --max-connections $((N + 100)) ;;
    pggw_boringssl_base | pggw_wolfssl_base)
        lib=${v#pggw_}
        PGGW_BIN=$BASE_BUILD/pggw start_pggw $v $port $((PORT_BASE + 60 + i)) ${lib%_base} 1 \
            --max-connections $((N + 100)) ;;
    pgbouncer) start_pgbouncer $v $port session $((N + 20)) ;;
    *) die "unknown variant $v" ;;
    esac
    pidvar=PID_$v
    measure $v $port "${!pidvar}"
    kill "${!pidvar}" 2>/dev/null || true   # one gateway at a time holds server connections
    wait "${!pidvar}" 2>/dev/null || true
done

echo "## memory per idle TLS session (N=$N, server=$SERVER; RSS in KiB)"
column -t -s $'\t' "$RAW"
awk -F'\t' 'NR > 1 {k[$1] = $8} END {
    if (k["pgbouncer"] > 0) {
        printf "ratio KiB/session pggw_boringssl/pgbouncer: %.2f\n", k["pggw_boringssl"] / k["pgbouncer"]
        printf "ratio KiB/session pggw_wolfssl/pgbouncer: %.2f\n", k["pggw_wolfssl"] / k["pgbouncer"]
    }
    if (k["pggw_boringssl_base"] > 0) printf "ratio KiB/session pggw_boringssl after/before: %.2f\n", k["pggw_boringssl"] / k["pggw_boringssl_base"]
    if (k["pggw_wolfssl_base"] > 0) printf "ratio KiB/session pggw_wolfssl after/before: %.2f\n", k["pggw_wolfssl"] / k["pggw_wolfssl_base"]
    }' "$RAW"
machine_line
