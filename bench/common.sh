# Shared helpers for bench/*.sh (sourced, not run). Starts throwaway PostgreSQL 15, pggw,
# PgBouncer and stunnel on loopback, reads process CPU time and RSS from /proc.
# Everything lives in one temp dir that is removed on exit; every process started is stopped
# by its PID.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${PGGW_BUILD:-$REPO/build-bench}
PGGW=$BUILD/pggw
LOADGEN=$BUILD/handshake_load
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PORT_BASE=${PORT_BASE:-27400}   # PG = base, proxies base+1.., metrics base+50..
CLK_TCK=$(getconf CLK_TCK)
PAGE_KIB=$(( $(getconf PAGESIZE) / 1024 ))

WORK=$(mktemp -d /tmp/pggw-bench.XXXXXX)
chmod 755 "$WORK"
STARTED_PIDS=()
PGDATA_DIR=""

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $PGDATA_DIR && -f $PGDATA_DIR/postmaster.pid ]]; then
        as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
    fi
    [[ ${KEEP_WORK:-0} == 1 ]] && log "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Prefix that runs a command as the postgres OS user (initdb, pg_ctl and PgBouncer refuse
# root). An array, not a function: "${AS_PG[@]}" cmd & leaves $! = the command's own PID.
AS_PG=()
[[ $(id -u) == 0 ]] && AS_PG=(setpriv --reuid postgres --regid postgres --init-groups --)
as_postgres() { "${AS_PG[@]}" "$@"; }

machine_line() {
    local model
    model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    printf 'machine: nproc=%s cpu="%s" kernel=%s load="%s" date=%s\n' "$(nproc)" "$model" \
        "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

# utime+stime of a process (all threads), in clock ticks.
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }           # fields after the command name; field 3 (state) is now $1
    set -- $stat
    echo $(( ${12} + ${13} ))   # fields 14 and 15 of /proc/PID/stat
}
# Resident set size of a process, KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

wait_port() {  # wait_port PORT [seconds]
    local i
    for ((i = 0; i < ${2:-10} * 20; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    die "nothing listens on port $1"
}

make_certs() {
    [[ -x $PGGW ]] || die "$PGGW not built (cmake --build $BUILD --target pggw handshake_load)"
    mkdir -p "$WORK/certs"
    "$PGGW" gen-cert --dir "$WORK/certs" ${CERT_KEY_TYPE:+--key-type $CERT_KEY_TYPE} >/dev/null
    # pggw wants its key owned by the user it runs as, mode 0600; PostgreSQL and PgBouncer
    # (run as postgres) get their own copy, owned by postgres.
    chmod 600 "$WORK/certs/server.key"
    cp "$WORK/certs/server.key" "$WORK/certs/pg-server.key"
    chown postgres:postgres "$WORK/certs/pg-server.key" 2>/dev/null || true
    chmod 600 "$WORK/certs/pg-server.key"
    CERT=$WORK/certs/server.crt
    KEY=$WORK/certs/server.key
    PG_KEY=$WORK/certs/pg-server.key
}

# start_pg PORT [max_connections]: PostgreSQL 15 with ssl=on and the same certificate,
# trust auth on loopback, pgbench -i -s 1.
start_pg() {
    PGPORT_=$1
    local maxconn=${2:-100}
    PGDATA_DIR=$WORK/pgdata
    mkdir -p "$WORK/pgsock" "$PGDATA_DIR"
    chown postgres:postgres "$WORK/pgsock" "$PGDATA_DIR"
    chmod 700 "$PGDATA_DIR"
    as_postgres "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust --no-sync >/dev/null
    cat >>"$PGDATA_DIR/postgresql.conf" <<EOF
port = $PGPORT_
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK/pgsock'
max_connections = $maxconn
shared_buffers = 128MB
fsync = off
synchronous_commit = off
ssl = on
ssl_cert_file = '$CERT'
ssl_key_file = '$PG_KEY'
ssl_min_protocol_version = 'TLSv1.3'
EOF
    as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/../pgsock/pg.log" -w start >/dev/null
    PG_PID=$(head -1 "$PGDATA_DIR/postmaster.pid")
    log "PostgreSQL 15 on 127.0.0.1:$PGPORT_ (pid $PG_PID)"
}

pgbench_init() {
    PGSSLMODE=disable pgbench -h 127.0.0.1 -p "$PGPORT_" -U postgres -i -s 1 -q postgres \
        >"$WORK/pgbench-init.log" 2>&1 || { cat "$WORK/pgbench-init.log"; die "pgbench -i"; }
}

# start_pggw NAME PORT METRICSPORT LIBRARY WORKERS [extra flags...]; sets PID_<NAME>.
start_pggw() {
    local name=$1 port=$2 mport=$3 lib=$4 workers=$5
    shift 5
    "${PGGW_BIN:-$PGGW}" --listen "127.0.0.1:$port" --server "127.0.0.1:$PGPORT_" --workers "$workers" \
        --cert "$CERT" --key "$KEY" --tls-library "$lib" \
        --metrics-listen "127.0.0.1:$mport" --log-level warn "$@" \
        >"$WORK/$name.log" 2>&1 &
    local pid=$!
    STARTED_PIDS+=("$pid")
    printf -v "PID_$name" '%s' "$pid"
    wait_port "$port"
    log "pggw $name on 127.0.0.1:$port ($lib, workers $workers, pid $pid)"
}

# start_pgbouncer NAME PORT [pool_mode] [pool_size]; sets PID_<NAME>. Runs as postgres
# (PgBouncer refuses root), session pooling, client_tls_sslmode=require, trust auth.
start_pgbouncer() {
    local name=$1 port=$2 mode=${3:-session} pool=${4:-20}
    local dir=$WORK/$name
    mkdir -p "$dir"
    echo '"postgres" ""' >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$PGPORT_
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = $mode
default_pool_size = $pool
max_client_conn = ${PGB_MAX_CLIENT_CONN:-5000}
max_db_connections = 0
client_tls_sslmode = require
client_tls_cert_file = $CERT
client_tls_key_file = $PG_KEY
client_tls_protocols = tlsv1.3
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
log_connections = 0
log_disconnections = 0
stats_period = 3600
EOF
    chown -R postgres:postgres "$dir"
    "${AS_PG[@]}" pgbouncer "$dir/pgbouncer.ini" >"$dir/stdout.log" 2>&1 &
    local pid=$!
    STARTED_PIDS+=("$pid")
    printf -v "PID_$name" '%s' "$pid"
    wait_port "$port"
    log "PgBouncer $name on 127.0.0.1:$port ($mode, pid $pid)"
}

# start_stub PORT: bench/pg_stub.py in place of PostgreSQL (completes the startup, answers
# queries with an empty result), for more sessions than this machine's PostgreSQL can hold.
start_stub() {
    PGPORT_=$1
    python3 "$REPO/bench/pg_stub.py" "$PGPORT_" >"$WORK/pg_stub.log" 2>&1 &
    local pid=$!
    STARTED_PIDS+=("$pid")
    wait_port "$PGPORT_"
    log "PostgreSQL stand-in bench/pg_stub.py on 127.0.0.1:$PGPORT_ (pid $pid)"
}

have_pgbouncer() { command -v pgbouncer >/dev/null 2>&1; }
have_haproxy() { command -v haproxy >/dev/null 2>&1; }

# start_haproxy NAME PORT; sets PID_<NAME>. A plaintext TCP relay (mode tcp, one thread) in
# front of PostgreSQL: the client's TLS goes end to end to PostgreSQL through it, so it is
# the floor a TLS-terminating proxy's relay can be measured against (the epoll relay alone).
start_haproxy() {
    local name=$1 port=$2
    cat >"$WORK/$name.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen pg
    bind 127.0.0.1:$port
    server pg 127.0.0.1:$PGPORT_
EOF
    haproxy -db -f "$WORK/$name.cfg" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    STARTED_PIDS+=("$pid")
    printf -v "PID_$name" '%s' "$pid"
    wait_port "$port"
    log "HAProxy $name on 127.0.0.1:$port (mode tcp, nbthread 1, pid $pid)"
}

have_stunnel() { command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1; }

# start_stunnel NAME PORT; sets PID_<NAME>. protocol = pgsql: answers SSLRequest with 'S'.
start_stunnel() {
    local name=$1 port=$2 bin
    bin=$(command -v stunnel4 || command -v stunnel)
    cat >"$WORK/$name.conf" <<EOF
foreground = yes
pid =
debug = 3
output = $WORK/$name.log
[pg]
accept = 127.0.0.1:$port
connect = 127.0.0.1:$PGPORT_
protocol = pgsql
cert = $CERT
key = $PG_KEY
sslVersionMin = TLSv1.3
EOF
    "$bin" "$WORK/$name.conf" >"$WORK/$name.stdout" 2>&1 &
    local pid=$!
    STARTED_PIDS+=("$pid")
    printf -v "PID_$name" '%s' "$pid"
    wait_port "$port"
    log "stunnel $name on 127.0.0.1:$port (pid $pid)"
}

# median of the numbers on stdin (one a line); "-" when none.
median() {
    sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "-"} else if (NR%2) {print a[(NR+1)/2]} else {printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}}'
}

# What an OpenSSL client with default settings (as libpq's) negotiates: version, cipher, group.
negotiated() {
    timeout 5 openssl s_client -starttls postgres -connect "127.0.0.1:$1" </dev/null 2>/dev/null |
        awk '/^New,/ {v = $2 " " $5} /Server Temp Key/ {sub(/.*Key: /, ""); g = $0} END {sub(",", "", v); print v ", " g}'
}
