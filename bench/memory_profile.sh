#!/usr/bin/env bash
# Where an idle TLS session's memory goes: pggw (--workers 1) under heaptrack holds N idle
# sessions (bench/handshake_load --mode idle: TLS 1.3 handshake, StartupMessage,
# ReadyForQuery, then nothing) against bench/pg_stub.py; pggw is killed with the sessions open,
# and the allocations live then are grouped by the first frame in pggw's sources (else a TLS
# library's) that made them, in bytes per session; fixed costs (the worker's buffer pool,
# contexts) are spread over N. Heap only: RSS also counts allocator slack and stacks
# (bench/memory.sh measures RSS).
#
# usage: bench/memory_profile.sh     env: N=300 LIB=boringssl PORT_BASE=27400 TOP=25
# Build first (symbols help): cmake --build $PGGW_BUILD --target pggw handshake_load
source "$(dirname "$0")/common.sh"
N=${N:-300}
LIB=${LIB:-boringssl}
TOP=${TOP:-25}
command -v heaptrack >/dev/null || die "heaptrack not installed (Debian package heaptrack)"
[[ -x $LOADGEN ]] || die "$LOADGEN not built (cmake --build $BUILD --target handshake_load)"
ulimit -n $((2 * N + 200)) 2>/dev/null || true

machine_line
make_certs
start_stub "$PORT_BASE"
port=$((PORT_BASE + 1))
heaptrack -o "$WORK/heap" "$PGGW" --listen "127.0.0.1:$port" --server "127.0.0.1:$PGPORT_" \
    --workers 1 --cert "$CERT" --key "$KEY" --tls-library "$LIB" --log-level warn \
    --max-connections $((N + 100)) >"$WORK/pggw.log" 2>&1 &
hpid=$!
STARTED_PIDS+=("$hpid")
wait_port "$port" 60
"$LOADGEN" --port "$port" --mode startup --threads 1 --count 20 >/dev/null || die "warm-up failed"
mkfifo "$WORK/ctl"
"$LOADGEN" --port "$port" --mode idle --threads 1 --count "$N" <"$WORK/ctl" >"$WORK/idle" 2>&1 &
gen=$!
STARTED_PIDS+=("$gen")
exec 7>"$WORK/ctl"
for ((i = 0; i < 1200; i++)); do
    grep -q '^READY' "$WORK/idle" && break
    kill -0 "$gen" 2>/dev/null || break
    sleep 0.1
done
grep -q '^READY' "$WORK/idle" || { cat "$WORK/idle"; die "sessions not opened"; }
sleep 2
# SIGKILL with the sessions open: what heaptrack then reports as leaked is exactly the heap
# of the N idle sessions (its peak would include the burst of closing them all at once).
pkill -KILL -f "^$PGGW --listen 127.0.0.1:$port" || true
wait "$hpid" || true
exec 7>&-
wait "$gen" || true
file=$(compgen -G "$WORK/heap*.zst" || compgen -G "$WORK/heap*.gz" || true)
[[ -n $file ]] || die "no heaptrack output"
heaptrack_print -f "$file" --flamegraph-cost-type leaked -F "$WORK/stacks.txt" >"$WORK/summary.txt"
grep -E '^(peak heap memory|total memory leaked)' "$WORK/summary.txt" || true

echo "## heap live with $N idle sessions, pggw $LIB: bytes per session by first frame of ours"
printf '%10s  %s\n' "B/session" "allocated by"
# A stack is "a;b;c COUNT" from the outermost frame, each frame "function (file)". The owner
# is the first frame from the leaf in one of pggw's source files (coroutine frames show as
# their function there), else in a TLS library, else the leaf.
ours=$(cd "$REPO" && git ls-files 'gateway/*.cpp' 'gateway/*.hpp' 'tls_backends/*.cpp' \
    'tls_backends/*.hpp' 'metrics/*.cpp' | xargs -n1 basename | paste -sd'|' | sed 's/\./\\./g')
awk -v n="$N" -v ours="[(](${ours})[)]$" '
{
    cost = $NF; $NF = ""; sub(/ $/, "")
    k = split($0, f, ";")
    owner = f[k]
    for (i = k; i >= 1; i--) if (f[i] ~ ours) { owner = f[i]; break }
    if (i < 1) for (i = k; i >= 1; i--) {
        if (f[i] ~ /SSL_|ssl_|bssl::|wolfSSL|InitSSL|TLSX_|wc_|EVP_/) { owner = f[i]; break }
    }
    gsub(/\(\)|<>/, "", owner)
    by[owner] += cost; total += cost
}
END {
    for (o in by) printf "%10.0f  %s\n", by[o] / n, o
    printf "%10.0f  total\n", total / n > "/dev/stderr"
}' "$WORK/stacks.txt" 2>"$WORK/total" | sort -rn | head -n "$TOP"
cat "$WORK/total"
