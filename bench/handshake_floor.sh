#!/usr/bin/env bash
# The handshake floor of this machine, and pggw's TLS handshake CPU against it (issue 13): per
# library, R interleaved rounds of
#   a  one server TLS 1.3 handshake in memory (bench/handshake_floor: same library, same
#      certificate, no sockets; the server engine's CPU only);
#   b  one plaintext connection through pggw --client-tls disable --workers 1: connect,
#      SSLRequest, 'N', close (pggw's CPU per connection);
#   c  one TLS handshake through pggw --workers 1, as bench/handshakes.sh makes them
#      (handshake_load --mode handshake: TCP connect, SSLRequest, 'S', full TLS 1.3 handshake,
#      close_notify, wait for the server's close; pggw's CPU per handshake).
# The goal: c within 1.15x of a + b. pggw's CPU is the sum of its threads' run time from
# /proc/PID/task/*/schedstat (nanoseconds: a plaintext connection is a few clock ticks).
# ECDSA P-256 certificates (pggw gen-cert's default; CERT_KEY_TYPE=ed25519|rsa for others).
#
# usage: bench/handshake_floor.sh   env: R=3 N=2000 LIBS="boringssl wolfssl" PORT_BASE=27400
# Build first: cmake --build $PGGW_BUILD --target pggw handshake_load handshake_floor
source "$(dirname "$0")/common.sh"
R=${R:-3}
N=${N:-2000}
LIBS=${LIBS:-boringssl wolfssl}
FLOOR=$BUILD/handshake_floor
[[ -x $FLOOR ]] || die "$FLOOR not built (cmake --build $BUILD --target handshake_floor)"

run_ns() {  # run_ns PID: CPU time of all its threads, ns
    cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'
}

plain_connections() {  # plain_connections PORT N: SSLRequest, expect 'N', close
    python3 - "$1" "$2" <<'EOF'
import socket, struct, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
req = struct.pack("!II", 8, 80877103)
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    if s.recv(1) != b"N":
        sys.exit("expected N")
    s.close()
EOF
}

machine_line
make_certs
start_stub "$PORT_BASE"
i=0
for lib in $LIBS; do
    start_pggw "tls_$lib" $((PORT_BASE + 1 + 2 * i)) $((PORT_BASE + 51 + 2 * i)) "$lib" 1
    start_pggw "plain_$lib" $((PORT_BASE + 2 + 2 * i)) $((PORT_BASE + 52 + 2 * i)) "$lib" 1 \
        --client-tls disable
    i=$((i + 1))
done

RAW=$WORK/floor.tsv
printf 'round\tlibrary\ta_us\tb_us\tc_us\tload1\n' >"$RAW"
for ((r = 1; r <= R; r++)); do
    i=0
    for lib in $LIBS; do
        tls_pid=PID_tls_$lib plain_pid=PID_plain_$lib
        a=$("$FLOOR" --library "$lib" --cert "$CERT" --key "$KEY" --count "$N" --batches 3 |
            sed -n 's/.*server_us=\([0-9.]*\).*/\1/p')
        t0=$(run_ns "${!plain_pid}")
        plain_connections $((PORT_BASE + 2 + 2 * i)) "$N"
        sleep 0.2  # pggw's side of the last closes
        b=$(awk -v d=$(($(run_ns "${!plain_pid}") - t0)) -v n="$N" 'BEGIN {printf "%.1f", d / n / 1000}')
        t0=$(run_ns "${!tls_pid}")
        "$LOADGEN" --port $((PORT_BASE + 1 + 2 * i)) --mode handshake --threads 1 --count "$N" \
            --tls-library "$lib" >/dev/null || die "handshake_load against pggw $lib failed"
        sleep 0.2
        c=$(awk -v d=$(($(run_ns "${!tls_pid}") - t0)) -v n="$N" 'BEGIN {printf "%.1f", d / n / 1000}')
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$lib" "$a" "$b" "$c" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RAW"
        log "round $r $lib: in-memory server handshake ${a} us, plaintext connection ${b} us, TLS handshake through pggw ${c} us"
        i=$((i + 1))
    done
done

echo "## raw"
cat "$RAW"
echo
echo "## medians over $R rounds, N=$N per measure, CPU us per connection"
printf '%-10s %12s %12s %10s %14s %16s\n' library "a in-memory" "b plaintext" "floor a+b" "c pggw TLS" "c / floor"
for lib in $LIBS; do
    a=$(awk -v l="$lib" '$2 == l {print $3}' "$RAW" | median)
    b=$(awk -v l="$lib" '$2 == l {print $4}' "$RAW" | median)
    c=$(awk -v l="$lib" '$2 == l {print $5}' "$RAW" | median)
    awk -v l="$lib" -v a="$a" -v b="$b" -v c="$c" \
        'BEGIN {printf "%-10s %12.1f %12.1f %10.1f %14.1f %16.2f\n", l, a, b, a + b, c, c / (a + b)}'
done
machine_line
