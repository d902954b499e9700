#!/usr/bin/env bash
# Relayed queries per proxy CPU-second, side by side in one run:
#   direct PostgreSQL 15 over TLS (ssl=on, same certificate), pggw boringssl and wolfssl
#   (--workers 1: CPU accounting per core), pggw boringssl --workers 2, PgBouncer 1.18
#   (session pooling, client_tls_sslmode=require, plaintext to PG), stunnel (protocol = pgsql,
#   if installed), HAProxy (mode tcp, nbthread 1, if installed: a plaintext TCP relay with the
#   client's TLS end to end to PostgreSQL, the floor row); and the plaintext relay: pggw --client-tls disable vs direct without TLS.
# Each: pgbench -S -T $T -c $CLIENTS -j $THREADS (PGSSLMODE=require, or disable for the plain
# pair), R interleaved rounds (A B C ..., A B C ..., ...). The proxy's CPU = utime+stime of its
# process from /proc/PID/stat, delta over the pgbench run, / CLK_TCK.
#
# usage: bench/relay.sh            env: R=3 T=10 CLIENTS=8 THREADS=2 PORT_BASE=27400
#                                       VARIANTS="direct_tls pggw_boringssl ..." (a subset)
# Build first: cmake --build build-bench --target pggw handshake_load
source "$(dirname "$0")/common.sh"

R=${R:-3}
T=${T:-10}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
ALL="direct_tls haproxy pggw_boringssl pggw_wolfssl pgbouncer stunnel pggw_boringssl_w2 direct_plain pggw_plain"
# BASE_BUILD=dir: also the pggw of another build (a change's baseline), same run, interleaved.
BASE_BUILD=${BASE_BUILD:-}
[[ -n $BASE_BUILD ]] && ALL="$ALL pggw_boringssl_base pggw_plain_base"
VARIANTS=${VARIANTS:-$ALL}
have_stunnel || VARIANTS=${VARIANTS//stunnel/}
have_haproxy || VARIANTS=${VARIANTS//haproxy/}
have_pgbouncer || VARIANTS=${VARIANTS//pgbouncer/}

machine_line
make_certs
start_pg "$PORT_BASE"
pgbench_init

declare -A PORT SSL PIDOF
PORT[direct_tls]=$PORT_BASE;  SSL[direct_tls]=require
PORT[direct_plain]=$PORT_BASE; SSL[direct_plain]=disable; SSL[pggw_plain]=disable
for v in $VARIANTS; do
    case $v in
    direct_*) ;;
    pggw_boringssl) start_pggw $v $((PORT_BASE + 1)) $((PORT_BASE + 51)) boringssl 1 ;;
    pggw_wolfssl) start_pggw $v $((PORT_BASE + 2)) $((PORT_BASE + 52)) wolfssl 1 ;;
    pggw_boringssl_w2) start_pggw $v $((PORT_BASE + 3)) $((PORT_BASE + 53)) boringssl 2 ;;
    pggw_plain) start_pggw $v $((PORT_BASE + 4)) $((PORT_BASE + 54)) boringssl 1 --client-tls disable ;;
    pgbouncer) start_pgbouncer $v $((PORT_BASE + 5)) session 20 ;;
    stunnel) start_stunnel $v $((PORT_BASE + 6)) ;;
    haproxy) start_haproxy $v $((PORT_BASE + 7)) ;;
    pggw_boringssl_base) PGGW_BIN=$BASE_BUILD/pggw start_pggw $v $((PORT_BASE + 8)) $((PORT_BASE + 58)) boringssl 1 ;;
    pggw_plain_base) PGGW_BIN=$BASE_BUILD/pggw start_pggw $v $((PORT_BASE + 9)) $((PORT_BASE + 59)) boringssl 1 --client-tls disable ;;
    *) die "unknown variant $v" ;;
    esac
done
PORT[pggw_boringssl]=$((PORT_BASE + 1)); PORT[pggw_wolfssl]=$((PORT_BASE + 2))
PORT[pggw_boringssl_w2]=$((PORT_BASE + 3)); PORT[pggw_plain]=$((PORT_BASE + 4))
PORT[pgbouncer]=$((PORT_BASE + 5)); PORT[stunnel]=$((PORT_BASE + 6)); PORT[haproxy]=$((PORT_BASE + 7))
PORT[pggw_boringssl_base]=$((PORT_BASE + 8)); PORT[pggw_plain_base]=$((PORT_BASE + 9)); SSL[pggw_plain_base]=disable
for v in $VARIANTS; do
    [[ -n ${SSL[$v]:-} ]] || SSL[$v]=require
    pidvar=PID_$v
    PIDOF[$v]=${!pidvar:-}
done

# Smoke test: one query through every path before timing anything.
for v in $VARIANTS; do
    PGSSLMODE=${SSL[$v]} psql -X -q -h 127.0.0.1 -p "${PORT[$v]}" -U postgres -d postgres \
        -Atc 'select 1' >/dev/null || die "$v: psql through port ${PORT[$v]} failed"
    [[ ${SSL[$v]} == require ]] && echo "negotiated $v: $(negotiated "${PORT[$v]}")"
done

RAW=$WORK/relay.tsv
printf 'round\tvariant\ttps\ttxns\tcpu_s\tload1\n' >"$RAW"
log "pgbench -S -T $T -c $CLIENTS -j $THREADS, $R rounds over: $VARIANTS"
for ((r = 1; r <= R; r++)); do
    for v in $VARIANTS; do
        pid=${PIDOF[$v]}
        c0=0
        [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
        out=$(PGSSLMODE=${SSL[$v]} pgbench -h 127.0.0.1 -p "${PORT[$v]}" -U postgres -n -S \
            -T "$T" -c "$CLIENTS" -j "$THREADS" postgres 2>&1) || { echo "$out"; die "$v: pgbench"; }
        c1=0
        [[ -n $pid ]] && c1=$(cpu_ticks "$pid")
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
        txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
        cpu=-
        [[ -n $pid ]] && cpu=$(awk -v a="$c0" -v b="$c1" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", (b-a)/h}')
        printf '%d\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$tps" "$txns" "$cpu" \
            "$(cut -d' ' -f1 /proc/loadavg)" >>"$RAW"
        log "round $r $v: tps=$tps cpu_s=$cpu"
    done
done

echo
echo "## raw (one line per pgbench run)"
column -t -s $'\t' "$RAW"
echo
echo "## medians over $R rounds: pgbench -S -T $T -c $CLIENTS -j $THREADS"
python3 - "$RAW" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {}
for r in rows:
    d = by.setdefault(r["variant"], {"tps": [], "qpcs": [], "cpu": [], "util": []})
    d["tps"].append(float(r["tps"]))
    if r["cpu_s"] != "-" and float(r["cpu_s"]) > 0:
        cpu = float(r["cpu_s"])
        d["cpu"].append(cpu)
        d["qpcs"].append(int(r["txns"]) / cpu)
med = lambda xs: statistics.median(xs) if xs else None
fmt = lambda x, f="{:,.0f}": "-" if x is None else f.format(x)
print(f"{'variant':20} {'tps':>10} {'proxy CPU s':>12} {'queries/proxy CPU-s':>20} {'tps spread':>18}")
for v, d in by.items():
    spread = f"{min(d['tps']):,.0f}..{max(d['tps']):,.0f}"
    print(f"{v:20} {fmt(med(d['tps'])):>10} {fmt(med(d['cpu']), '{:.2f}'):>12} "
          f"{fmt(med(d['qpcs'])):>20} {spread:>18}")
def ratio(a, b, key):
    if a in by and b in by and med(by[a][key]) and med(by[b][key]):
        return med(by[a][key]) / med(by[b][key])
print()
for a, b in [("pggw_boringssl", "haproxy"), ("pggw_wolfssl", "haproxy"), ("pgbouncer", "haproxy"),
             ("pggw_boringssl", "pggw_boringssl_base"), ("pggw_plain", "pggw_plain_base"),
             ("pggw_boringssl", "pgbouncer"), ("pggw_wolfssl", "pgbouncer"),
             ("pggw_boringssl", "stunnel"), ("pggw_wolfssl", "pggw_boringssl"),
             ("pggw_boringssl_w2", "pggw_boringssl")]:
    for key, what in [("qpcs", "queries/proxy CPU-s"), ("tps", "tps")]:
        x = ratio(a, b, key)
        if x: print(f"ratio {what:20} {a}/{b}: {x:.2f}")
for a, b in [("pggw_boringssl", "direct_tls"), ("pgbouncer", "direct_tls"),
             ("pggw_plain", "direct_plain")]:
    x = ratio(a, b, "tps")
    if x: print(f"ratio tps {a}/{b}: {x:.2f}")
EOF
echo
machine_line
