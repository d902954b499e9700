#!/usr/bin/env bash
# README command 1: install what is missing, build, start a throwaway PostgreSQL 15 and pggw in
# front of it with a snake-oil certificate (TLS required), and print the psql line. Ctrl-C
# stops both and removes the throwaway cluster.
#
# Environment (all optional): PGGW_DEMO_DIR (certificates; default ./.pggw-demo),
# PGGW_DEMO_PORT (6432), PGGW_DEMO_PG_PORT (54329), PGGW_DEMO_METRICS_PORT (9930),
# PGGW_BUILD_DIR (./build), PGGW_DEMO_SKIP_INSTALL=1, PGGW_TLS_LIBRARY (boringssl).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=${PGGW_DEMO_DIR:-$ROOT/.pggw-demo}
PORT=${PGGW_DEMO_PORT:-6432}
PG_PORT=${PGGW_DEMO_PG_PORT:-54329}
METRICS_PORT=${PGGW_DEMO_METRICS_PORT:-9930}
BUILD=${PGGW_BUILD_DIR:-$ROOT/build}
LIBRARY=${PGGW_TLS_LIBRARY:-boringssl}
PGBIN=/usr/lib/postgresql/15/bin

[ "${PGGW_DEMO_SKIP_INSTALL:-0}" = 1 ] || "$ROOT/scripts/install-deps.sh"
# A build directory given by the caller (the smoke test, CI) is used as it is.
if [ -z "${PGGW_BUILD_DIR:-}" ] || [ ! -x "$BUILD/pggw" ]; then
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$BUILD" --target pggw -j "$(nproc)" >/dev/null
fi

# Snake-oil CA and server certificate, made once (README.SSL: no anonymous TLS servers).
mkdir -p "$DEMO_DIR"
if [ ! -f "$DEMO_DIR/certs/server.crt" ]; then
  "$BUILD/pggw" gen-cert --dir "$DEMO_DIR/certs" --hostname localhost --hostname 127.0.0.1 >/dev/null
fi

# Throwaway PostgreSQL 15: initdb refuses root, so run it as the postgres OS user then.
PGDATA_ROOT=$(mktemp -d /tmp/pggw-demo-pg.XXXXXX)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$PGDATA_ROOT"
  as_pg=(runuser -u postgres --)
fi
pggw_pid=""
cleanup() {
  trap - INT TERM EXIT
  [ -n "$pggw_pid" ] && kill -TERM "$pggw_pid" 2>/dev/null && wait "$pggw_pid" 2>/dev/null
  "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$PGDATA_ROOT/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PGDATA_ROOT"
  echo "pggw demo stopped"
}
trap cleanup INT TERM EXIT
"${as_pg[@]}" "$PGBIN/initdb" -D "$PGDATA_ROOT/data" -U postgres -A trust >/dev/null
"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$PGDATA_ROOT/data" -l "$PGDATA_ROOT/postgresql.log" -w \
  -o "-p $PG_PORT -k $PGDATA_ROOT -c listen_addresses=127.0.0.1" start >/dev/null

"$BUILD/pggw" --listen "127.0.0.1:$PORT" --server "127.0.0.1:$PG_PORT" \
  --cert "$DEMO_DIR/certs/server.crt" --key "$DEMO_DIR/certs/server.key" --client-tls require \
  --tls-library "$LIBRARY" --metrics-listen "127.0.0.1:$METRICS_PORT" &
pggw_pid=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$pggw_pid" 2>/dev/null || exit 1
  sleep 0.1
done
echo
echo "pggw is serving TLS on 127.0.0.1:$PORT in front of PostgreSQL 15 on port $PG_PORT. Connect with:"
echo "psql \"host=localhost port=$PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$DEMO_DIR/certs/ca.crt\""
echo "Metrics: curl http://127.0.0.1:$METRICS_PORT/metrics    Stop: Ctrl-C"
wait "$pggw_pid"
