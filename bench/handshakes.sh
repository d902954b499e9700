#!/usr/bin/env bash
# Full TLS 1.3 handshakes per CPU-second of the gateway, side by side in one run:
# pggw boringssl, pggw wolfssl (both --workers 1, so CPU is per core) and PgBouncer 1.18.
# Certificate ECDSA P-256 (pggw gen-cert), key exchange X25519, no resumption.
#
#  1. crypto bound of this machine (server per handshake: one P-256 sign + one X25519 keygen +
#     one X25519 agreement): openssl speed -seconds 2 ecdsap256 ecdhx25519, and the same
#     operations in the BoringSSL libcrypto pggw loads (bench/crypto_bound.py, ctypes).
#  2. handshake only: build-bench/handshake_load --mode handshake (TCP connect, SSLRequest,
#     'S', full handshake, close_notify, close), $HS_THREADS concurrent connections, $T s;
#     client-side latency percentiles, and pggw's pggw_tls_handshake_duration_seconds
#     histogram (delta over the run, interpolated within its power-of-two buckets).
#  3. full connection setup: pgbench -C -S -T $T -c $CLIENTS -j 2 (a new TLS connection,
#     StartupMessage to ReadyForQuery, per transaction) with PostgreSQL 15 behind; direct to
#     PostgreSQL (ssl=on) for reference. PgBouncer pools server connections (session mode),
#     pggw opens a new one to PostgreSQL per client: compare CPU per connection, not tps.
# R interleaved rounds of each.
#
# usage: bench/handshakes.sh     env: R=3 T=10 HS_THREADS=4 CLIENTS=4 PORT_BASE=27400
source "$(dirname "$0")/common.sh"

R=${R:-3}
T=${T:-10}
HS_THREADS=${HS_THREADS:-4}
CLIENTS=${CLIENTS:-4}
GATEWAYS="pggw_boringssl pggw_wolfssl pgbouncer"
[[ -x $LOADGEN ]] || die "$LOADGEN not built (cmake --build $BUILD --target handshake_load)"

machine_line

echo "## crypto bound (server per handshake: 1 ECDSA P-256 sign + X25519 keygen + X25519 agreement)"
echo "### openssl speed -seconds 2 ecdsap256 ecdhx25519 ($(openssl version | cut -d' ' -f1-2))"
speed=$(openssl speed -seconds 2 ecdsap256 ecdhx25519 2>/dev/null)
sign_s=$(awk '/^ *256 bits ecdsa \(nistp256\)/ {print $(NF-1)}' <<<"$speed")
verify_s=$(awk '/^ *256 bits ecdsa \(nistp256\)/ {print $NF}' <<<"$speed")
x25519_s=$(awk '/^ *253 bits ecdh \(X25519\)/ {print $NF}' <<<"$speed")
grep -E 'sign/s|op/s|nistp256|X25519' <<<"$speed" | sed 's/^/    /'
ossl_us=$(awk -v s="$sign_s" -v x="$x25519_s" 'BEGIN {printf "%.1f", 1e6/s + 2*1e6/x}')
echo "OpenSSL: 1 sign ($sign_s/s) + 2 X25519 ($x25519_s/s) = ${ossl_us} us" \
     "-> $(awk -v b="$ossl_us" 'BEGIN {printf "%.0f", 1e6/b}') handshakes per CPU-second"
echo "### BoringSSL (the libcrypto pggw's boringssl module uses): bench/crypto_bound.py 2"
bssl=$(python3 "$REPO/bench/crypto_bound.py" 2)
sed 's/^/    /' <<<"$bssl"
bound_us=$(sed -n 's/^server_handshake_crypto_us=//p' <<<"$bssl")
bound_hs=$(sed -n 's/^server_bound_handshakes_per_cpu_s=//p' <<<"$bssl")
echo "bound used below: BoringSSL ${bound_us} us -> ${bound_hs} handshakes per CPU-second"
echo "(the client side does an ECDSA verify instead of the sign: the load generator needs more CPU than the server)"
echo

make_certs
start_pg "$PORT_BASE" 200
pgbench_init
start_pggw pggw_boringssl $((PORT_BASE + 1)) $((PORT_BASE + 51)) boringssl 1
start_pggw pggw_wolfssl $((PORT_BASE + 2)) $((PORT_BASE + 52)) wolfssl 1
start_pgbouncer pgbouncer $((PORT_BASE + 5)) session 20
declare -A PORT=([pggw_boringssl]=$((PORT_BASE + 1)) [pggw_wolfssl]=$((PORT_BASE + 2))
    [pgbouncer]=$((PORT_BASE + 5)) [direct_tls]=$PORT_BASE)
declare -A MPORT=([pggw_boringssl]=$((PORT_BASE + 51)) [pggw_wolfssl]=$((PORT_BASE + 52)))
declare -A PIDOF=([pggw_boringssl]=$PID_pggw_boringssl [pggw_wolfssl]=$PID_pggw_wolfssl
    [pgbouncer]=$PID_pgbouncer [direct_tls]=)

scrape() {  # scrape NAME FILE: client-leg handshake histogram buckets of a pggw
    if [[ -n ${MPORT[$1]:-} ]]; then
        python3 - "${MPORT[$1]}" >"$2" <<'EOF'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
for line in body.splitlines():
    if line.startswith("pggw_tls_handshake_duration_seconds_bucket") and 'leg="client"' in line \
            and 'result="ok"' in line:
        le = line.split('le="')[1].split('"')[0]
        print(le, line.rsplit(" ", 1)[1])
EOF
    else
        : >"$2"
    fi
}

# Smoke: one handshake and one pgbench connection through each.
for g in $GATEWAYS; do
    "$LOADGEN" --port "${PORT[$g]}" --mode handshake --threads 1 --count 3 >/dev/null ||
        die "$g: handshake_load failed"
    echo "negotiated $g (OpenSSL client defaults): $(negotiated "${PORT[$g]}")"
done

RAW=$WORK/handshakes.tsv
printf 'round\ttest\tgateway\tok\tfail\tseconds\trate\tcpu_s\tper_cpu_s\tp50_us\tp90_us\tp99_us\tsrv_p50_us\tsrv_p90_us\tsrv_p99_us\tload1\n' >"$RAW"

hist_pct() {  # hist_pct BEFORE AFTER: server-side p50 p90 p99 in us from bucket deltas
    python3 - "$1" "$2" <<'EOF'
import sys
def load(p):
    d = {}
    for line in open(p):
        le, v = line.split()
        d[le] = d.get(le, 0) + float(v)  # summed over workers/labels
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
if not b:
    print("- - -"); sys.exit()
keys = sorted(b, key=lambda k: float("inf") if k == "+Inf" else float(k))
cum = [(k, b[k] - a.get(k, 0)) for k in keys]
total = cum[-1][1]
out = []
for q in (0.5, 0.9, 0.99):
    want, prev_le, prev_c = q * total, 0.0, 0.0
    val = None
    for k, c in cum:
        le = float("inf") if k == "+Inf" else float(k)
        if c >= want and total > 0:
            if le == float("inf"): val = prev_le
            else: val = prev_le + (le - prev_le) * ((want - prev_c) / max(c - prev_c, 1e-9))
            break
        prev_le, prev_c = (le if le != float("inf") else prev_le), c
    out.append("-" if val is None else f"{val*1e6:.0f}")
print(" ".join(out))
EOF
}

for ((r = 1; r <= R; r++)); do
    for g in $GATEWAYS; do
        pid=${PIDOF[$g]}
        scrape "$g" "$WORK/h0"
        c0=$(cpu_ticks "$pid")
        out=$("$LOADGEN" --port "${PORT[$g]}" --mode handshake --threads "$HS_THREADS" --duration "$T")
        c1=$(cpu_ticks "$pid")
        scrape "$g" "$WORK/h1"
        srv=$(hist_pct "$WORK/h0" "$WORK/h1")
        kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $out"; }
        cpu=$(awk -v a="$c0" -v b="$c1" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", (b-a)/h}')
        per=$(awk -v n="$(kv ok)" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", n/c; else print "-"}')
        printf '%d\thandshake\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$g" \
            "$(kv ok)" "$(kv fail)" "$(kv seconds)" "$(kv rate)" "$cpu" "$per" \
            "$(kv p50_us)" "$(kv p90_us)" "$(kv p99_us)" $srv "$(cut -d' ' -f1 /proc/loadavg)" >>"$RAW"
        log "round $r handshake $g: $(kv ok) ok, $(kv rate)/s, cpu ${cpu}s, ${per}/CPU-s"
    done
    for g in direct_tls $GATEWAYS; do
        pid=${PIDOF[$g]}
        c0=0
        [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
        out=$(PGSSLMODE=require pgbench -h 127.0.0.1 -p "${PORT[$g]}" -U postgres -n -C -S \
            -T "$T" -c "$CLIENTS" -j 2 postgres 2>&1) || { echo "$out"; die "$g: pgbench -C"; }
        c1=0
        [[ -n $pid ]] && c1=$(cpu_ticks "$pid")
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
        txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
        lat=$(sed -n 's/^average connection time = \([0-9.]*\) ms/\1/p' <<<"$out")
        cpu=-; per=-
        if [[ -n $pid ]]; then
            cpu=$(awk -v a="$c0" -v b="$c1" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", (b-a)/h}')
            per=$(awk -v n="$txns" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", n/c; else print "-"}')
        fi
        lat_us=$(awk -v l="${lat:-0}" 'BEGIN {printf "%.0f", l*1000}')
        printf '%d\tpgbench-C\t%s\t%s\t0\t%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t%s\n' "$r" "$g" "$txns" \
            "$T" "$tps" "$cpu" "$per" "$lat_us" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RAW"
        log "round $r pgbench -C $g: tps=$tps cpu=${cpu}s ${per}/CPU-s conn=${lat}ms"
    done
done

echo "## raw (one line per run; pgbench-C: p50_us column = pgbench's average connection time)"
column -t -s $'\t' "$RAW"
echo
python3 - "$RAW" "$bound_hs" "$bound_us" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
bound, bound_us = float(sys.argv[2]), sys.argv[3]
med = lambda xs: statistics.median(xs) if xs else None
def num(x):
    try: return float(x)
    except ValueError: return None
def col(test, g, k):
    return [v for v in (num(r[k]) for r in rows if r["test"] == test and r["gateway"] == g) if v is not None]
f = lambda x, s="{:,.0f}": "-" if x is None else s.format(x)
gws = ["pggw_boringssl", "pggw_wolfssl", "pgbouncer"]
print("## handshake only (SSLRequest, TLS 1.3 full handshake, close): medians")
print(f"{'gateway':16} {'hs/s':>8} {'hs/CPU-s':>9} {'of bound':>9} {'us CPU/hs':>10} "
      f"{'client p50/p90/p99 us':>22} {'pggw histogram p50/p90/p99 us':>30}")
for g in gws:
    per = med(col("handshake", g, "per_cpu_s"))
    cl = "/".join(f(med(col("handshake", g, k))) for k in ("p50_us", "p90_us", "p99_us"))
    sv = "/".join(f(med(col("handshake", g, k))) for k in ("srv_p50_us", "srv_p90_us", "srv_p99_us"))
    print(f"{g:16} {f(med(col('handshake', g, 'rate'))):>8} {f(per):>9} "
          f"{f(per / bound if per else None, '{:.0%}'):>9} {f(1e6 / per if per else None, '{:.0f}'):>10} "
          f"{cl:>22} {sv if g != 'pgbouncer' else 'n/a':>30}")
print(f"crypto bound: {bound:,.0f} handshakes per CPU-second ({bound_us} us)")
for a, b in [("pggw_boringssl", "pgbouncer"), ("pggw_wolfssl", "pgbouncer"), ("pggw_wolfssl", "pggw_boringssl")]:
    x, y = med(col("handshake", a, "per_cpu_s")), med(col("handshake", b, "per_cpu_s"))
    if x and y: print(f"ratio handshakes/CPU-s {a}/{b}: {x / y:.2f}")
print()
print("## full connection setup (pgbench -C -S): medians")
print(f"{'gateway':16} {'conn/s (tps)':>12} {'conn/gateway CPU-s':>19} {'avg connect ms':>15}")
for g in ["direct_tls"] + gws:
    per = med(col("pgbench-C", g, "per_cpu_s"))
    lat = med(col("pgbench-C", g, "p50_us"))
    print(f"{g:16} {f(med(col('pgbench-C', g, 'rate'))):>12} {f(per):>19} {f(lat / 1000 if lat else None, '{:.2f}'):>15}")
for a, b in [("pggw_boringssl", "pgbouncer"), ("pggw_wolfssl", "pgbouncer")]:
    x, y = med(col("pgbench-C", a, "per_cpu_s")), med(col("pgbench-C", b, "per_cpu_s"))
    if x and y: print(f"ratio connections/CPU-s {a}/{b}: {x / y:.2f}")
EOF
echo
machine_line
