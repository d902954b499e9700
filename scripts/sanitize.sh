#!/usr/bin/env bash
# The integration tests (real PostgreSQL 15, both TLS libraries) against sanitizer builds of
# pggw, where the coroutines, timeouts, cancellation, the server leg and reloads really run:
#   asan  ASan+UBSan (PGGW_SANITIZE, Debug, build-asan-int): every integration file.
#   tsan  TSan (PGGW_TSAN, Debug, build-tsan): the tests where threads meet (TSAN_TESTS below).
# Any sanitizer report fails the test during which pggw wrote it, LeakSanitizer's at pggw's
# exit included (tests/integration/conftest.py, "Sanitizer reports"); suppressions, each with
# its reason, are in tests/sanitizers/. Debug, not RelWithDebInfo: on 2 cores the build costs
# more than the slower tests save, and the ASan build is then the one scripts/test.sh makes
# for the unit tests (same options), which PGGW_ASAN_BUILD_DIR=build-asan reuses.
#
# Usage: scripts/sanitize.sh [asan|tsan]...   (default: both)
# Environment: PGGW_ASAN_BUILD_DIR, PGGW_TSAN_BUILD_DIR (build directories), PGGW_SANITIZE_JOBS
# (parallel builds and test files, default nproc).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ASAN_DIR=${PGGW_ASAN_BUILD_DIR:-$ROOT/build-asan-int}
TSAN_DIR=${PGGW_TSAN_BUILD_DIR:-$ROOT/build-tsan}
jobs=${PGGW_SANITIZE_JOBS:-$(nproc)}
PYTHON3=/usr/bin/python3  # Debian's, with pytest and psycopg2 (CMake uses the same)
IT="$ROOT/tests/integration"

# The tests that run under TSan, where threads meet: each entry is FILE or FILE::PYTEST_K.
#   test_relay.py      all of it: its module gateway runs --workers 2 (pgbench, cancel across
#                      workers, teardown both ways), plus --workers, SIGTERM drains
#   test_metrics.py    all of it: counters from every worker's shard scraped by the admin
#                      thread, /healthz and /readyz through a drain, expiry gauge over SIGHUP
#   test_lifecycle.py  all of it: certificate reloads (cert watcher and SIGHUP) with sessions
#                      open, drains, second signals, the admin port under load
#   test_server_tls.py the SIGHUP reload of the server leg
TSAN_TESTS=(test_relay.py test_metrics.py test_lifecycle.py "test_server_tls.py::sighup")

configure_build() {  # DIR LOG BUILD_TYPE, extra cmake options...
  local dir=$1 log=$2 type=$3
  shift 3
  # pggw builds the TLS modules it loads (a dependency); nothing else is needed here.
  if ! { cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" \
    -DPGGW_WERROR=ON -DPGGW_BENCH=OFF "$@" &&
    nice cmake --build "$dir" -j "$jobs" --target pggw; } >"$log" 2>&1; then
    tail -n 60 "$log"
    return 1
  fi
}

run_one() {  # BUILD_DIR LOG_DIR FILE[::K]: one file, one pytest (as CTest runs it)
  local dir=$1 logdir=$2 file=${3%%::*} t0=$SECONDS
  local -a args=()
  [[ $3 != *::* ]] || args=(-k "${3#*::}")
  local backends
  backends=$(sed -n 's/^PGGW_WITH_\(BORINGSSL\|WOLFSSL\):BOOL=ON$/\1/p' "$dir/CMakeCache.txt" |
    tr 'A-Z\n' 'a-z,')
  if (cd "$IT" && PGGW_BUILD_DIR="$dir" PGGW_SOURCE_DIR="$ROOT" PGGW_BACKENDS="${backends%,}" \
    timeout 900 "$PYTHON3" -m pytest -q -p no:cacheprovider --maxfail=3 "${args[@]}" "$file") \
    >"$logdir/$file.log" 2>&1; then
    echo "   ok    $file ($((SECONDS - t0)) s): $(tail -n 1 "$logdir/$file.log")"
  else
    echo "   FAIL  $file ($((SECONDS - t0)) s), log $logdir/$file.log:"
    tail -n 150 "$logdir/$file.log"
    return 1
  fi
}

run_files() {  # BUILD_DIR LOG_DIR FILE[::K]...: $jobs files at a time
  local dir=$1 logdir=$2 failed=0 running=0 f
  shift 2
  mkdir -p "$logdir"
  for f in "$@"; do
    if ((running >= jobs)); then
      wait -n || failed=1
      running=$((running - 1))
    fi
    run_one "$dir" "$logdir" "$f" &
    running=$((running + 1))
  done
  while ((running > 0)); do
    wait -n || failed=1
    running=$((running - 1))
  done
  return $failed
}

logs=$(mktemp -d /tmp/pggw-sanitize.XXXXXX)
status=0
[ $# -gt 0 ] || set -- asan tsan
for what in "$@"; do
  t0=$SECONDS
  case $what in
  asan)
    echo "== integration tests under ASan+UBSan ($ASAN_DIR)"
    configure_build "$ASAN_DIR" "$logs/build-asan.log" Debug -DPGGW_SANITIZE=ON -DPGGW_TSAN=OFF
    echo "   built in $((SECONDS - t0)) s"
    # Longest first, so that the slots finish together; then any file added since.
    files=(test_client_tls.py test_server_tls.py test_relay.py test_lifecycle.py
      test_metrics.py test_startup.py test_proxy_protocol.py test_logging.py test_demo.py)
    for f in "$IT"/test_*.py; do
      [[ " ${files[*]} " == *" $(basename "$f") "* ]] || files+=("$(basename "$f")")
    done
    run_files "$ASAN_DIR" "$logs/asan" "${files[@]}" || status=1
    ;;
  tsan)
    echo "== multi-threaded integration tests under TSan ($TSAN_DIR)"
    configure_build "$TSAN_DIR" "$logs/build-tsan.log" Debug -DPGGW_TSAN=ON -DPGGW_SANITIZE=OFF
    echo "   built in $((SECONDS - t0)) s"
    run_files "$TSAN_DIR" "$logs/tsan" "${TSAN_TESTS[@]}" || status=1
    ;;
  *)
    echo "usage: $0 [asan|tsan]..." >&2
    exit 2
    ;;
  esac
  echo "   $what: $((SECONDS - t0)) s in all"
done
if [ $status -eq 0 ]; then
  echo "== sanitizer runs passed ($SECONDS s; logs in $logs)"
else
  echo "== sanitizer runs FAILED ($SECONDS s; logs in $logs)"
fi
exit $status
