#!/usr/bin/env bash
# Scaling of TLS handshakes across pggw workers on a many-core machine (no PostgreSQL needed):
# pggw --workers W pinned with taskset to W CPUs (distinct physical cores first), handshake_load
# pinned to the remaining CPUs, handshake-only mode (TCP connect, SSLRequest, 'S', full TLS 1.3
# handshake with X25519, close_notify, close). Two certificates, one run each:
#   ecdsa-p256  DIR/certs (device_prepare.sh), W = $WORKERS (1 2 4 6 8): the generator's ECDSA
#               verify costs about as much as pggw's sign, so the generator needs as many CPUs
#   rsa-2048    made here with the carried pggw gen-cert --key-type rsa-2048, W = $RSA_WORKERS
#               (1 2 4 8 12 14): server-heavy (an RSA-2048 sign is ~30x its verify), so a
#               few generator CPUs keep many workers busy
# For each point: handshakes/s, pggw CPU seconds (/proc/PID/stat), handshakes per pggw
# CPU-second, pggw utilisation (CPU s / (seconds x W)), generator utilisation, client-side
# latency percentiles. Results: $OUT/scaling.tsv, $OUT/scaling.txt, $OUT/machine.txt.
#
# Runs from a folder made by bench/device_prepare.sh (binaries + their libraries). If the
# machine's glibc is older than the binaries need, it falls back to the glibc carried in
# DIR/glibc (run through its own loader, modules found via PGGW_TLS_MODULE_DIR).
#
# usage: bench/device_scaling.sh [DIR]   env: OUT=/tmp/pggw-scaling WORKERS="1 2 4 6 8"
#                                             RSA_WORKERS="1 2 4 8 12 14" (empty: no RSA run)
#                                             KEYS="ecdsa-p256 rsa-2048"
#                                             LIBS="boringssl wolfssl" D=8 PORT=28400
#                                             (pggw on PORT+W, its metrics on PORT+50+W)
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(cd "${1:-$REPO/build-bench/device}" && pwd)
OUT=${OUT:-/tmp/pggw-scaling}
WORKERS=${WORKERS:-1 2 4 6 8}
RSA_WORKERS=${RSA_WORKERS-1 2 4 8 12 14}
KEYS=${KEYS:-ecdsa-p256 rsa-2048}
LIBS=${LIBS:-boringssl wolfssl}
D=${D:-8}
PORT=${PORT:-28400}
mkdir -p "$OUT"
CLK_TCK=$(getconf CLK_TCK)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/log.txt" >&2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel: $(uname -r)"
    echo "os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "glibc: $(ldd --version 2>&1 | head -1)"
    echo "load: $(cat /proc/loadavg)"
    echo "open files: $(ulimit -n)"
    echo "binaries need:"; sed 's/^/  /' "$DIR/glibc-needed.txt" 2>/dev/null
    command -v lscpu >/dev/null && lscpu | grep -E 'Model name|Socket|Core|Thread|NUMA|MHz|L3'
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt" >&2

# How to run our binaries here: natively with the carried libraries (libstdc++ included), natively
# with the machine's own libstdc++, or through the carried glibc and its loader.
try_runner() {
    "$@" "$DIR/pggw" --version >"$OUT/version.txt" 2>&1 &&
        "$@" "$DIR/handshake_load" --bad-flag >/dev/null 2>"$OUT/loadgen-check.txt"
    # handshake_load answers a bad flag with usage and exit 2 once it is loaded
    [[ $? == 2 ]] && grep -q usage "$OUT/loadgen-check.txt"
}
RUN=(env "LD_LIBRARY_PATH=$DIR/lib:$DIR/lib-cxx" "PGGW_TLS_MODULE_DIR=$DIR")
runner="native glibc, carried libstdc++"
if ! try_runner "${RUN[@]}"; then
    log "native run failed: $(head -c 300 "$OUT/version.txt")"
    RUN=(env "LD_LIBRARY_PATH=$DIR/lib" "PGGW_TLS_MODULE_DIR=$DIR")
    runner="native glibc and libstdc++"
    if ! try_runner "${RUN[@]}"; then
        log "native libstdc++ failed too: $(head -c 300 "$OUT/version.txt"); falling back to the carried glibc"
        RUN=(env "PGGW_TLS_MODULE_DIR=$DIR" "$DIR/glibc/ld-linux-x86-64.so.2"
            --library-path "$DIR/lib:$DIR/lib-cxx:$DIR/glibc")
        runner="carried glibc (fallback)"
        try_runner "${RUN[@]}" || {
            log "fallback failed too: $(cat "$OUT/version.txt" "$OUT/loadgen-check.txt")"
            exit 1
        }
    fi
fi
echo "runner: $runner" | tee -a "$OUT/machine.txt" >&2
cat "$OUT/version.txt" >&2

# Crypto bound of this machine, if openssl is here (OpenSSL's implementations, not BoringSSL's).
if command -v openssl >/dev/null; then
    openssl speed -seconds 1 ecdsap256 ecdhx25519 rsa2048 >"$OUT/openssl-speed.txt" 2>/dev/null
    grep -E 'nistp256|X25519|^rsa 2048' "$OUT/openssl-speed.txt" >&2
fi

# The same operations in the carried BoringSSL libcrypto (what pggw's boringssl module uses).
if command -v python3 >/dev/null; then
    BORINGSSL_CRYPTO=$DIR/lib/libcrypto.so.0 timeout 30 python3 "$REPO/bench/crypto_bound.py" 1 \
        >"$OUT/crypto_bound.txt" 2>&1 && cat "$OUT/crypto_bound.txt" >&2
fi

# CPU order: one CPU per physical core first, then their hyperthread siblings.
ORDER=()
if command -v lscpu >/dev/null; then
    mapfile -t ORDER < <(lscpu -p=CPU,CORE,SOCKET | grep -v '^#' |
        awk -F, '{n[$2","$3]++; print n[$2","$3], $3, $2, $1}' | sort -n -k1,1 -k2,2 -k3,3 | awk '{print $4}')
fi
((${#ORDER[@]} == $(nproc))) || mapfile -t ORDER < <(seq 0 $(($(nproc) - 1)))
echo "cpu order (physical cores first): ${ORDER[*]}" | tee -a "$OUT/machine.txt" >&2
join() { local IFS=,; echo "$*"; }

cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    set -- $stat
    echo $((${12} + ${13}))
}
wait_port() {
    local i
    for ((i = 0; i < 200; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

# Certificates per key type: P-256 from device_prepare.sh, the others made here.
declare -A CERTS=([ecdsa-p256]=$DIR/certs)
for key in $KEYS; do
    [[ -n ${CERTS[$key]:-} ]] && continue
    CERTS[$key]=$OUT/certs-$key
    rm -rf "${CERTS[$key]}"
    if ! "${RUN[@]}" "$DIR/pggw" gen-cert --dir "${CERTS[$key]}" --key-type "$key" >/dev/null \
        2>"$OUT/gen-cert-$key.txt"; then
        log "gen-cert --key-type $key failed: $(cat "$OUT/gen-cert-$key.txt")"
        unset "CERTS[$key]"
    fi
done

TSV=$OUT/scaling.tsv
printf 'key\tlibrary\tworkers\tpggw_cpus\tgen_cpus\tgen_threads\tok\tfail\tseconds\ths_per_s\tpggw_cpu_s\ths_per_pggw_cpu_s\tpggw_util\tgen_util\tp50_us\tp90_us\tp99_us\n' >"$TSV"
n=$(nproc)
for key in $KEYS; do
    [[ -n ${CERTS[$key]:-} ]] || continue
    case $key in
    rsa-2048) points=$RSA_WORKERS ;;
    *) points=$WORKERS ;;
    esac
    for lib in $LIBS; do
        for W in $points; do
            ((W < n)) || continue
            pcpus=$(join "${ORDER[@]:0:W}")
            gcpus=$(join "${ORDER[@]:W}")
            ngen=$((n - W))
            threads=$((16 * W))
            ((threads < 32)) && threads=32
            ((threads > 160)) && threads=160
            port=$((PORT + W))
            taskset -c "$pcpus" "${RUN[@]}" "$DIR/pggw" --listen "127.0.0.1:$port" \
                --server 127.0.0.1:1 --workers "$W" --cert "${CERTS[$key]}/server.crt" \
                --key "${CERTS[$key]}/server.key" --tls-library "$lib" --tls-min-version 1.3 \
                --metrics-listen "127.0.0.1:$((port + 50))" --log-level warn \
                >"$OUT/pggw-$key-$lib-$W.log" 2>&1 &
            pid=$!
            PIDS+=("$pid")
            if ! wait_port "$port"; then
                log "pggw $key $lib W=$W did not start: $(tail -3 "$OUT/pggw-$key-$lib-$W.log")"
                kill "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
                continue
            fi
            # warm-up 1 s, then the measured run
            timeout 30 taskset -c "$gcpus" "${RUN[@]}" "$DIR/handshake_load" --port "$port" \
                --mode handshake --threads "$threads" --duration 1 >/dev/null 2>&1
            c0=$(cpu_ticks "$pid")
            out=$(timeout $((D + 30)) taskset -c "$gcpus" "${RUN[@]}" "$DIR/handshake_load" \
                --port "$port" --mode handshake --threads "$threads" --duration "$D" 2>&1)
            c1=$(cpu_ticks "$pid")
            kill "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            echo "$key $lib W=$W: $out" >>"$OUT/raw.txt"
            ok=$(kv ok "$out")
            secs=$(kv seconds "$out")
            gcpu=$(kv cpu_s "$out")
            line=$(awk -v a="$c0" -v b="$c1" -v h="$CLK_TCK" -v ok="${ok:-0}" -v s="${secs:-1}" \
                -v w="$W" -v g="${gcpu:-0}" -v ng="$ngen" 'BEGIN {
                    c = (b - a) / h
                    printf "%.1f\t%.2f\t%.0f\t%.0f%%\t%.0f%%", ok / s, c, (c > 0 ? ok / c : 0),
                        100 * c / (s * w), 100 * g / (s * ng) }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$lib" "$W" \
                "$pcpus" "$gcpus" "$threads" "$ok" "$(kv fail "$out")" "$secs" "$line" \
                "$(kv p50_us "$out")" "$(kv p90_us "$out")" "$(kv p99_us "$out")" >>"$TSV"
            log "$key $lib W=$W: $(tail -1 "$TSV")"
        done
    done
done

# Table with speedup against W=1 of the same key type and library.
awk -F'\t' 'NR == 1 {next}
    { k = $1 "/" $2
      if ($3 == 1) base[k] = $10
      printf "%-10s %-10s %3s %10s %8s %13s %10s %9s %10s %s/%s/%s\n", $1, $2, $3, $10,
        (base[k] > 0 ? sprintf("%.2fx", $10 / base[k]) : "-"), $12, $13, $14, "", $15, $16, $17 }
    BEGIN { printf "%-10s %-10s %3s %10s %8s %13s %10s %9s %10s %s\n", "key", "library", "W",
        "hs/s", "speedup", "hs/pggw-CPU-s", "pggw util", "gen util", "", "client p50/p90/p99 us" }' \
    "$TSV" | tee "$OUT/scaling.txt"
