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
# KEY_TYPES: the pggw certificates, side by side (pggw gen-cert --key-type): the first is also
# PostgreSQL's and PgBouncer's, its pggw rows keep their names (pggw_boringssl, pggw_wolfssl);
# each further type adds pggw_boringssl_<type> and pggw_wolfssl_<type> rows (ed25519, rsa_2048,
# ecdsa_p256), compared with the first type's rows of the same library. Default: ecdsa-p256
# alone (or $CERT_KEY_TYPE), the rows as before. KEY_PGBENCH=0: the further types in the
# handshake test only. A pggw that refuses its certificate is left out, said so. The
# generator's TLS library: HS_LIBRARY (handshake_load --tls-library, default boringssl), for
# every row alike.
#
# usage: bench/handshakes.sh     env: R=3 T=10 HS_THREADS=4 CLIENTS=4 PORT_BASE=27400
#                                     KEY_TYPES="ecdsa-p256 ed25519 rsa-2048" KEY_PGBENCH=1
#                                     HS_LIBRARY=boringssl BASE_BUILD=
# BASE_BUILD=dir: also the pggw boringssl of another build (a change's baseline) as the row
# pggw_boringssl_base, same run, interleaved, in both tests (ratio against pggw_boringssl).
source "$(dirname "$0")/common.sh"

R=${R:-3}
T=${T:-10}
HS_THREADS=${HS_THREADS:-4}
CLIENTS=${CLIENTS:-4}
KEY_TYPES=${KEY_TYPES:-${CERT_KEY_TYPE:-ecdsa-p256}}
KEY_PGBENCH=${KEY_PGBENCH:-1}
read -r -a KEYS <<<"$KEY_TYPES"
CERT_KEY_TYPE=${KEYS[0]}
GATEWAYS="pggw_boringssl pggw_wolfssl pgbouncer"
HS_LIBRARY=${HS_LIBRARY:-boringssl}
BASE_BUILD=${BASE_BUILD:-}
EXTRA=""  # the further key types' pggw rows that started
have_pgbouncer || die "PgBouncer not installed (Debian package pgbouncer; scripts/install-deps.sh installs it)"
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
if ((${#KEYS[@]} > 1)); then
    echo "### openssl speed -seconds 2 ed25519 rsa2048 (the other key types: 1 sign + 2 X25519)"
    speed2=$(openssl speed -seconds 2 ed25519 rsa2048 2>/dev/null)
    grep -E 'sign/s|Ed25519|^rsa 2048' <<<"$speed2" | sed 's/^/    /'
    for k in "${KEYS[@]}"; do
        case $k in
        ecdsa-p256) s=$sign_s ;;
        ed25519) s=$(awk '/^ *253 bits EdDSA \(Ed25519\)/ {print $(NF-1)}' <<<"$speed2") ;;
        rsa-2048) s=$(awk '/^rsa 2048 bits/ {print $(NF-1)}' <<<"$speed2") ;;
        *) continue ;;
        esac
        echo "OpenSSL $k: 1 sign ($s/s) + 2 X25519 -> $(awk -v s="$s" -v x="$x25519_s" \
            'BEGIN {printf "%.0f", 1e6 / (1e6/s + 2*1e6/x)}') handshakes per CPU-second"
    done
fi
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
declare -A KEY_OF=([pggw_boringssl]=${KEYS[0]} [pggw_wolfssl]=${KEYS[0]} [pgbouncer]=${KEYS[0]}
    [direct_tls]=${KEYS[0]})
# The further key types: their own gen-cert directory, ports base+11.. (metrics base+61..).
main_cert=$CERT main_key=$KEY
i=0
for k in "${KEYS[@]:1}"; do
    mkdir -p "$WORK/certs-$k"
    "$PGGW" gen-cert --dir "$WORK/certs-$k" --key-type "$k" >/dev/null
    CERT=$WORK/certs-$k/server.crt KEY=$WORK/certs-$k/server.key
    for lib in boringssl wolfssl; do
        g=pggw_${lib}_${k//-/_}
        i=$((i + 1))
        # Does this library take the certificate? (start_pggw would die on a refusal.)
        rc=0
        probe=$(timeout 2 "$PGGW" --listen 127.0.0.1:0 --server 127.0.0.1:1 --cert "$CERT" \
            --key "$KEY" --tls-library "$lib" --metrics-listen 127.0.0.1:0 --log-level warn \
            2>&1) || rc=$?
        if [[ $rc != 124 ]]; then
            echo "left out: $g (pggw refuses the $k certificate: $(tail -1 <<<"$probe"))"
            continue
        fi
        EXTRA+=" $g"
        start_pggw "$g" $((PORT_BASE + 10 + i)) $((PORT_BASE + 60 + i)) "$lib" 1
        PORT[$g]=$((PORT_BASE + 10 + i))
        MPORT[$g]=$((PORT_BASE + 60 + i))
        pid_var=PID_$g
        PIDOF[$g]=${!pid_var}
        KEY_OF[$g]=$k
    done
done
CERT=$main_cert KEY=$main_key
BASE_ROW=""
if [[ -n $BASE_BUILD ]]; then
    PGGW_BIN=$BASE_BUILD/pggw start_pggw pggw_boringssl_base $((PORT_BASE + 8)) \
        $((PORT_BASE + 58)) boringssl 1
    PORT[pggw_boringssl_base]=$((PORT_BASE + 8)) MPORT[pggw_boringssl_base]=$((PORT_BASE + 58))
    PIDOF[pggw_boringssl_base]=$PID_pggw_boringssl_base KEY_OF[pggw_boringssl_base]=${KEYS[0]}
    BASE_ROW=" pggw_boringssl_base"
fi
HS_GATEWAYS="$GATEWAYS$BASE_ROW$EXTRA"
PGB_GATEWAYS=$GATEWAYS$BASE_ROW
[[ $KEY_PGBENCH == 1 ]] && PGB_GATEWAYS+=$EXTRA

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
for g in $HS_GATEWAYS; do
    "$LOADGEN" --port "${PORT[$g]}" --mode handshake --threads 1 --count 3 \
        --tls-library "$HS_LIBRARY" >/dev/null ||
        die "$g: handshake_load --tls-library $HS_LIBRARY failed"
    echo "negotiated $g, ${KEY_OF[$g]} (OpenSSL client defaults): $(negotiated "${PORT[$g]}")"
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
    for g in $HS_GATEWAYS; do
        pid=${PIDOF[$g]}
        scrape "$g" "$WORK/h0"
        c0=$(cpu_ticks "$pid")
        out=$("$LOADGEN" --port "${PORT[$g]}" --mode handshake --threads "$HS_THREADS" \
            --duration "$T" --tls-library "$HS_LIBRARY")
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
    for g in direct_tls $PGB_GATEWAYS; do
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
for g in direct_tls $HS_GATEWAYS; do echo "$g ${KEY_OF[$g]}"; done >"$WORK/keys.txt"
python3 - "$RAW" "$bound_hs" "$bound_us" "$WORK/keys.txt" "$HS_LIBRARY" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
bound, bound_us = float(sys.argv[2]), sys.argv[3]
key_of = dict(line.split() for line in open(sys.argv[4]))
extra = [g for g in key_of if g.startswith("pggw_") and g not in ("pggw_boringssl", "pggw_wolfssl")]
med = lambda xs: statistics.median(xs) if xs else None
def num(x):
    try: return float(x)
    except ValueError: return None
def col(test, g, k):
    return [v for v in (num(r[k]) for r in rows if r["test"] == test and r["gateway"] == g) if v is not None]
f = lambda x, s="{:,.0f}": "-" if x is None else s.format(x)
gws = ["pggw_boringssl", "pggw_wolfssl", "pgbouncer"]
print(f"## handshake only (SSLRequest, TLS 1.3 full handshake, close; generator {sys.argv[5]}): medians")
print(f"{'gateway':24} {'key':10} {'hs/s':>8} {'hs/CPU-s':>9} {'of bound':>9} {'us CPU/hs':>10} "
      f"{'client p50/p90/p99 us':>22} {'pggw histogram p50/p90/p99 us':>30}")
for g in gws + extra:
    per = med(col("handshake", g, "per_cpu_s"))
    cl = "/".join(f(med(col("handshake", g, k))) for k in ("p50_us", "p90_us", "p99_us"))
    sv = "/".join(f(med(col("handshake", g, k))) for k in ("srv_p50_us", "srv_p90_us", "srv_p99_us"))
    print(f"{g:24} {key_of[g]:10} {f(med(col('handshake', g, 'rate'))):>8} {f(per):>9} "
          f"{f(per / bound if per else None, '{:.0%}'):>9} {f(1e6 / per if per else None, '{:.0f}'):>10} "
          f"{cl:>22} {sv if g != 'pgbouncer' else 'n/a':>30}")
print(f"crypto bound: {bound:,.0f} handshakes per CPU-second ({bound_us} us, ECDSA P-256; "
      "\"of bound\" is against it for every key type)")
pairs = [("pggw_boringssl", "pgbouncer"), ("pggw_wolfssl", "pgbouncer"), ("pggw_wolfssl", "pggw_boringssl")]
pairs += [(g, "pggw_wolfssl" if g.startswith("pggw_wolfssl") else "pggw_boringssl") for g in extra]
for a, b in pairs:
    x, y = med(col("handshake", a, "per_cpu_s")), med(col("handshake", b, "per_cpu_s"))
    if x and y: print(f"ratio handshakes/CPU-s {a}/{b} ({key_of[a]}/{key_of[b]}): {x / y:.2f}")
print()
print("## full connection setup (pgbench -C -S): medians")
print(f"{'gateway':24} {'key':10} {'conn/s (tps)':>12} {'conn/gateway CPU-s':>19} {'avg connect ms':>15}")
for g in ["direct_tls"] + gws + extra:
    if not col("pgbench-C", g, "rate"): continue
    per = med(col("pgbench-C", g, "per_cpu_s"))
    lat = med(col("pgbench-C", g, "p50_us"))
    print(f"{g:24} {key_of[g]:10} {f(med(col('pgbench-C', g, 'rate'))):>12} {f(per):>19} {f(lat / 1000 if lat else None, '{:.2f}'):>15}")
for a, b in [("pggw_boringssl", "pgbouncer"), ("pggw_wolfssl", "pgbouncer")] + pairs[3:]:
    x, y = med(col("pgbench-C", a, "per_cpu_s")), med(col("pgbench-C", b, "per_cpu_s"))
    if x and y: print(f"ratio connections/CPU-s {a}/{b} ({key_of[a]}/{key_of[b]}): {x / y:.2f}")
EOF
echo
machine_line
