#!/usr/bin/env bash
# Proxy CPU-seconds per GB of a large COPY ... TO STDOUT over TLS, side by side in one run:
#   direct PostgreSQL 15 over TLS (no proxy: the client-observed time only), pggw boringssl and
#   wolfssl (--workers 1: CPU accounting per core), PgBouncer 1.18 (session pooling,
#   client_tls_sslmode=require, plaintext to PG; if installed), and pggw --client-tls disable
#   (plaintext client leg) as a reference row; and pggw_wolfssl_chacha: wolfssl with --tls-ciphers
#   TLS13-CHACHA20-POLY1305-SHA256:... forced. Debian's wolfSSL 5.5.4 is built without AES-NI
#   (its AES-GCM is table-driven C), so pggw's wolfSSL default order already puts ChaCha20
#   first (tls_backends/wolfssl_cipher_order.hpp): the two rows should agree; a wolfSSL with
#   AES-NI picks AES-128-GCM by default, and the forced row then shows the other cipher.
# Each: `psql -c "COPY (SELECT repeat('x', ROW) FROM generate_series(1, ROWS)) TO STDOUT" | wc -c`
# (PGSSLMODE=require, or disable for the plaintext row), R interleaved rounds (A B C ..., A B C
# ..., ...). ROWS = SIZE_MB MiB / (ROW + 6): each row is one CopyData message of ROW + 6 bytes
# ('d', int32 length, ROW bytes, newline). Bytes relayed = pggw's pggw_bytes_total
# {direction="server_to_client"} delta where there is a pggw, else the COPY output (wc -c) plus
# the 5-byte CopyData header of each row. The proxy's CPU = utime+stime of its process from
# /proc/PID/stat, delta over the psql run, / CLK_TCK; per GB = per 10^9 bytes relayed.
#
# Then, outside the timed rounds, on one copy of RECORD_MB MiB per TLS variant:
#   - the TLS records written toward the client, read off the wire by a passive tap between psql
#     and the proxy (a Python relay that parses record headers; the proxy itself runs
#     unobserved): a full record is 16384 bytes of plaintext, length field 16401 with TLS 1.3
#     AES-GCM (+ 1 content type byte + 16 tag), 16406 bytes on the wire;
#   - the proxy's send/receive system call sizes (strace -f -yy -s 0 attached to the proxy; it
#     slows the proxy, so more bytes wait per read than without it), per socket: toward the
#     client and from PostgreSQL.
# PROFILE="pggw_wolfssl ...": also `perf record -g` attached to each variant named (one with a
# proxy) during a copy of PROFILE_MB MiB, and the top of `perf report --no-children`.
#
# usage: bench/bulk.sh        env: R=3 SIZE_MB=1024 ROW=1000 RECORD_MB=32 PORT_BASE=27800
#                                  VARIANTS="direct_tls pggw_boringssl ..." (a subset)
#                                  PROFILE= (variants to profile) PROFILE_MB=256
# Build first: cmake --build build-bench --target pggw
PORT_BASE=${PORT_BASE:-27800}
source "$(dirname "$0")/common.sh"

R=${R:-3}
SIZE_MB=${SIZE_MB:-1024}
ROW=${ROW:-1000}
RECORD_MB=${RECORD_MB:-32}
PROFILE=${PROFILE:-}
PROFILE_MB=${PROFILE_MB:-256}
ALL="direct_tls pggw_boringssl pggw_wolfssl pggw_wolfssl_chacha pgbouncer pggw_plain"
VARIANTS=${VARIANTS:-$ALL}
have_pgbouncer || { VARIANTS=${VARIANTS//pgbouncer/}; log "PgBouncer not installed: no pgbouncer row"; }
ROWS=$((SIZE_MB * 1024 * 1024 / (ROW + 6)))
RECORD_ROWS=$((RECORD_MB * 1024 * 1024 / (ROW + 6)))
PROFILE_ROWS=$((PROFILE_MB * 1024 * 1024 / (ROW + 6)))
copy_sql() { echo "COPY (SELECT repeat('x', $ROW) FROM generate_series(1, $1)) TO STDOUT"; }

machine_line
make_certs
start_pg "$PORT_BASE"

declare -A PORT SSL PIDOF MPORT
PORT[direct_tls]=$PORT_BASE; SSL[pggw_plain]=disable
for v in $VARIANTS; do
    case $v in
    direct_tls) ;;
    pggw_boringssl) start_pggw $v $((PORT_BASE + 1)) $((PORT_BASE + 51)) boringssl 1 ;;
    pggw_wolfssl) start_pggw $v $((PORT_BASE + 2)) $((PORT_BASE + 52)) wolfssl 1 ;;
    pggw_plain) start_pggw $v $((PORT_BASE + 4)) $((PORT_BASE + 54)) boringssl 1 --client-tls disable ;;
    pggw_wolfssl_chacha) start_pggw $v $((PORT_BASE + 3)) $((PORT_BASE + 53)) wolfssl 1 \
        --tls-ciphers TLS13-CHACHA20-POLY1305-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305 ;;
    pgbouncer) start_pgbouncer $v $((PORT_BASE + 5)) session 20 ;;
    *) die "unknown variant $v" ;;
    esac
done
PORT[pggw_boringssl]=$((PORT_BASE + 1)); PORT[pggw_wolfssl]=$((PORT_BASE + 2))
PORT[pggw_plain]=$((PORT_BASE + 4)); PORT[pgbouncer]=$((PORT_BASE + 5))
PORT[pggw_wolfssl_chacha]=$((PORT_BASE + 3)); MPORT[pggw_wolfssl_chacha]=$((PORT_BASE + 53))
MPORT[pggw_boringssl]=$((PORT_BASE + 51)); MPORT[pggw_wolfssl]=$((PORT_BASE + 52))
MPORT[pggw_plain]=$((PORT_BASE + 54))
TAP_PORT=$((PORT_BASE + 10))
for v in $VARIANTS; do
    [[ -n ${SSL[$v]:-} ]] || SSL[$v]=require
    pidvar=PID_$v
    PIDOF[$v]=${!pidvar:-}
done

# pggw's server-to-client byte counter (all its shards), or "-" without a pggw.
relayed_bytes() {
    [[ -n ${MPORT[$1]:-} ]] || { echo -; return; }
    curl -fsS "http://127.0.0.1:${MPORT[$1]}/metrics" |
        awk '/^pggw_bytes_total\{/ && /direction="server_to_client"/ {s += $NF} END {printf "%.0f\n", s}'
}
copy_through() {  # copy_through VARIANT ROWS [PORT]: the COPY's output size in bytes
    PGSSLMODE=${SSL[$1]} psql -X -q -h 127.0.0.1 -p "${3:-${PORT[$1]}}" -U postgres -d postgres \
        -c "$(copy_sql "$2")" | wc -c
}

# Smoke test: one small copy through every path before timing anything.
for v in $VARIANTS; do
    n=$(copy_through "$v" 10) || die "$v: psql COPY through port ${PORT[$v]} failed"
    [[ $n == $((10 * (ROW + 1))) ]] || die "$v: COPY gave $n bytes, expected $((10 * (ROW + 1)))"
    [[ ${SSL[$v]} == require ]] && echo "negotiated $v: $(negotiated "${PORT[$v]}")"
done

RAW=$WORK/bulk.tsv
printf 'round\tvariant\tout_bytes\trelayed_bytes\twall_s\tcpu_s\tload1\n' >"$RAW"
log "COPY of $ROWS rows x $ROW bytes (~$SIZE_MB MiB), $R rounds over: $VARIANTS"
for ((r = 1; r <= R; r++)); do
    for v in $VARIANTS; do
        pid=${PIDOF[$v]}
        c0=0
        [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
        b0=$(relayed_bytes "$v")
        t0=$EPOCHREALTIME
        out=$(copy_through "$v" "$ROWS") || die "$v: psql COPY"
        t1=$EPOCHREALTIME
        c1=0
        [[ -n $pid ]] && c1=$(cpu_ticks "$pid")
        b1=$(relayed_bytes "$v")
        [[ $out == $((ROWS * (ROW + 1))) ]] || die "$v: COPY gave $out bytes, expected $((ROWS * (ROW + 1)))"
        rel=-
        [[ $b0 != - ]] && rel=$((b1 - b0))
        cpu=-
        [[ -n $pid ]] && cpu=$(awk -v a="$c0" -v b="$c1" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", (b-a)/h}')
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b-a}')
        printf '%d\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$out" "$rel" "$wall" "$cpu" \
            "$(cut -d' ' -f1 /proc/loadavg)" >>"$RAW"
        log "round $r $v: bytes=$out relayed=$rel wall_s=$wall cpu_s=$cpu"
    done
done

echo
echo "## raw (one line per COPY)"
column -t -s $'\t' "$RAW"
echo
echo "## medians over $R rounds: COPY of $ROWS rows of $ROW bytes TO STDOUT (psql | wc -c)"
python3 - "$RAW" "$ROWS" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
nrows = int(sys.argv[2])
by = {}
for r in rows:
    d = by.setdefault(r["variant"], {"bytes": [], "wall": [], "cpu": [], "cpu_gb": []})
    # Bytes relayed: pggw's counter, else the COPY output plus each row's CopyData header.
    b = int(r["relayed_bytes"]) if r["relayed_bytes"] != "-" else int(r["out_bytes"]) + 5 * nrows
    d["bytes"].append(b)
    d["wall"].append(float(r["wall_s"]))
    if r["cpu_s"] != "-":
        d["cpu"].append(float(r["cpu_s"]))
        d["cpu_gb"].append(float(r["cpu_s"]) / (b / 1e9))
med = lambda xs: statistics.median(xs) if xs else None
fmt = lambda x, f="{:.2f}": "-" if x is None else f.format(x)
pgb = med(by.get("pgbouncer", {}).get("cpu_gb", []))
print(f"{'variant':20} {'bytes relayed':>14} {'wall s':>8} {'MB/s':>7} {'proxy CPU s':>12} "
      f"{'CPU-s/GB':>9} {'/PgBouncer':>10} {'CPU-s/GB spread':>16}")
for v, d in by.items():
    b, w, c, g = med(d["bytes"]), med(d["wall"]), med(d["cpu"]), med(d["cpu_gb"])
    spread = f"{min(d['cpu_gb']):.2f}..{max(d['cpu_gb']):.2f}" if d["cpu_gb"] else "-"
    ratio = fmt(g / pgb) if g is not None and pgb else "-"
    print(f"{v:20} {b:>14,.0f} {w:>8.2f} {b / w / 1e6:>7.0f} {fmt(c):>12} {fmt(g, '{:.3f}'):>9} "
          f"{ratio:>10} {spread:>16}")
def ratio(a, b, key):
    if a in by and b in by and med(by[a][key]) and med(by[b][key]):
        return med(by[a][key]) / med(by[b][key])
print()
for a, b in [("pggw_boringssl", "pgbouncer"), ("pggw_wolfssl", "pgbouncer"),
             ("pggw_wolfssl_chacha", "pgbouncer"), ("pggw_wolfssl_chacha", "pggw_wolfssl"),
             ("pggw_wolfssl", "pggw_boringssl"), ("pggw_plain", "pggw_boringssl")]:
    x = ratio(a, b, "cpu_gb")
    if x: print(f"ratio proxy CPU-s/GB {a}/{b}: {x:.2f}")
for a, b in [("pggw_boringssl", "direct_tls"), ("pggw_wolfssl", "direct_tls"),
             ("pgbouncer", "direct_tls"), ("pggw_boringssl", "pgbouncer")]:
    x = ratio(a, b, "wall")
    if x: print(f"ratio wall {a}/{b}: {x:.2f}")
EOF

# --- TLS records toward the client, and the proxy's send/receive sizes -----------------------
# Passive tap: psql -> tap -> proxy. Relays both ways; parses the record headers of what the
# proxy sends (after its one-byte answer to SSLRequest) and prints "type length count" lines.
cat >"$WORK/tap.py" <<'EOF'
import collections, socket, sys, threading
listen, upstream, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", listen)); ls.listen(1)
print("ready", flush=True)
c, _ = ls.accept()
s = socket.create_connection(("127.0.0.1", upstream))
def pump(a, b, parse):
    first, hdr, skip, hist = True, b"", 0, collections.Counter()
    while True:
        try:
            data = a.recv(1 << 20)
        except ConnectionResetError:  # PostgreSQL resets after the client's close_notify
            data = b""
        if not data:
            break
        try:
            b.sendall(data)
        except OSError:
            break
        if not parse:
            continue
        i = 0
        if first:
            first = False
            if data[:1] in (b"S", b"N"):
                i = 1
        while i < len(data):
            if skip:
                k = min(skip, len(data) - i); skip -= k; i += k; continue
            k = min(5 - len(hdr), len(data) - i); hdr += data[i:i + k]; i += k
            if len(hdr) == 5:
                n = int.from_bytes(hdr[3:5], "big"); hist[(hdr[0], n)] += 1; skip = n; hdr = b""
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    if parse:
        with open(out, "w") as f:
            for (t, n), k in sorted(hist.items()):
                f.write(f"{t} {n} {k}\n")
t = threading.Thread(target=pump, args=(c, s, False)); t.start()
pump(s, c, True); t.join()
EOF

# records_summary FILE: application-data records (type 23) by length, from tap.py's output.
records_summary() {
    awk '$1 == 23 {n += $3; b += $2 * $3; if ($2 == 16401) {full += $3; fb += $2 * $3}; h[$2] += $3}
        END {
            printf "records %d, mean length %.0f, full (16401 = 16384 plaintext) %.1f%% of records, %.1f%% of bytes; most common lengths:", n, b / n, 100 * full / n, 100 * fb / b
            m = 0; for (k in h) keys[m++] = k
            for (i = 0; i < m; i++) for (j = i + 1; j < m; j++) if (h[keys[j]] > h[keys[i]]) {t = keys[i]; keys[i] = keys[j]; keys[j] = t}
            for (i = 0; i < m && i < 6; i++) printf " %s x%d", keys[i], h[keys[i]]
            printf "\n"
        }' "$1"
}

echo
echo "## TLS records written toward the client: COPY of $RECORD_ROWS rows (~$RECORD_MB MiB), through a passive tap"
for v in $VARIANTS; do
    [[ ${SSL[$v]} == require ]] || continue
    coproc TAP { exec python3 "$WORK/tap.py" "$TAP_PORT" "${PORT[$v]}" "$WORK/$v.records"; }
    tpid=$TAP_PID
    STARTED_PIDS+=("$tpid")
    read -r _ <&"${TAP[0]}"
    copy_through "$v" "$RECORD_ROWS" "$TAP_PORT" >/dev/null || die "$v: COPY through the tap"
    wait "$tpid" 2>/dev/null || true
    printf '%-20s %s\n' "$v" "$(records_summary "$WORK/$v.records")"
done

if command -v strace >/dev/null; then
    echo
    echo "## the proxy's socket calls during a COPY of $RECORD_ROWS rows (strace -f -yy attached: slowed by it)"
    printf '%-20s %-10s %-9s %7s %12s %9s %s\n' variant socket call calls bytes bytes/call "most common sizes (EAGAIN: -1)"
    for v in $VARIANTS; do
        pid=${PIDOF[$v]}
        [[ -n $pid ]] || continue
        strace -f -qq -yy -s 0 -e trace=sendto,sendmsg,write,writev,recvfrom,recvmsg,read,readv \
            -o "$WORK/$v.strace" -p "$pid" &
        spid=$!
        STARTED_PIDS+=("$spid")
        sleep 1
        copy_through "$v" "$RECORD_ROWS" >/dev/null || die "$v: COPY under strace"
        kill -INT "$spid"
        wait "$spid" 2>/dev/null || true
        # Sockets: to the client = local port is the proxy's; from PostgreSQL = remote port PG's.
        awk -v v="$v" -v cport=":${PORT[$v]}->" -v sport="->127.0.0.1:$PORT_BASE]" '
            { sub(/^[0-9]+ +/, "") }
            /^(sendto|sendmsg|write|writev|recvfrom|recvmsg|read|readv)\([0-9]+<TCP/ && / = -?[0-9]+/ {
                call = substr($0, 1, index($0, "(") - 1)
                if (index($0, cport)) sock = "client"; else if (index($0, sport)) sock = "postgres"; else next
                ret = $0; sub(/.* = /, "", ret); sub(/ .*/, "", ret)
                k = sock SUBSEP call; n[k]++; if (ret > 0) b[k] += ret; h[k, ret]++
            }
            END {
                for (k in n) {
                    split(k, p, SUBSEP)
                    m = 0; delete keys
                    for (hk in h) { split(hk, q, SUBSEP); if (q[1] == p[1] && q[2] == p[2]) keys[m++] = q[3] }
                    for (i = 0; i < m; i++) for (j = i + 1; j < m; j++) if (h[p[1], p[2], keys[j]] > h[p[1], p[2], keys[i]]) {t = keys[i]; keys[i] = keys[j]; keys[j] = t}
                    s = ""; for (i = 0; i < m && i < 5; i++) s = s sprintf(" %s x%d", keys[i], h[p[1], p[2], keys[i]])
                    printf "%-20s %-10s %-9s %7d %12d %9.0f%s\n", v, p[1], p[2], n[k], b[k], b[k] / n[k], s
                }
            }' "$WORK/$v.strace" | sort -k2,2 -k3,3
    done
fi

for v in $PROFILE; do
    pid=${PIDOF[$v]:-}
    [[ -n $pid ]] && command -v perf >/dev/null || continue
    echo
    echo "## perf record -g on $v during a COPY of $PROFILE_ROWS rows (~$PROFILE_MB MiB); perf report --no-children (flat)"
    perf record -q -g -o "$WORK/$v.perf" -p "$pid" 2>"$WORK/$v.perf.log" &
    ppid_=$!
    STARTED_PIDS+=("$ppid_")
    sleep 1
    copy_through "$v" "$PROFILE_ROWS" >/dev/null || die "$v: COPY under perf"
    kill -INT "$ppid_"
    wait "$ppid_" 2>/dev/null || true
    echo "by shared object:"
    perf report -i "$WORK/$v.perf" --no-children --stdio -g none --sort dso --percent-limit 0.5 \
        2>/dev/null | grep -v -e '^$' -e '^#' | head -12 || true
    echo "by symbol:"
    perf report -i "$WORK/$v.perf" --no-children --stdio -g none --percent-limit 0.7 2>/dev/null |
        grep -v -e '^$' -e '^#' | head -25 || true
done
echo
machine_line
