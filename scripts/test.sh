#!/usr/bin/env bash
# README command 2: install, build, run every test (unit, TLS conformance, integration with a
# real PostgreSQL 15, deploy checks) through CTest; then the unit tests again under ASan+UBSan,
# the integration tests against ASan+UBSan and TSan builds of pggw, a smoke run of every
# benchmark, and every fuzz target for a bounded time (PGGW_FUZZ_SECONDS, default 30).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install-deps.sh"
jobs=$(nproc)

echo "== build (Release, warnings are errors)"
cmake -S "$ROOT" -B "$ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPGGW_WERROR=ON >/dev/null
cmake --build "$ROOT/build" -j "$jobs"
echo "== tests"
(cd "$ROOT/build" && ctest --output-on-failure -j "$jobs" --timeout 900)

echo "== unit tests under ASan+UBSan"
cmake -S "$ROOT" -B "$ROOT/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPGGW_WERROR=ON \
  -DPGGW_SANITIZE=ON -DPGGW_BENCH=OFF >/dev/null
cmake --build "$ROOT/build-asan" -j "$jobs" --target pggw_unit_tests pggw_tls_tests pggw
(cd "$ROOT/build-asan" && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" -L unit)
echo "== integration tests against ASan+UBSan and TSan builds of pggw (scripts/sanitize.sh)"
PGGW_ASAN_BUILD_DIR="$ROOT/build-asan" "$ROOT/scripts/sanitize.sh"
echo "== benchmarks, smoke run (bench/run.sh --smoke: every benchmark runs, tiny sizes)"
PGGW_BUILD="$ROOT/build" "$ROOT/bench/run.sh" --smoke
echo "== fuzz targets, ${PGGW_FUZZ_SECONDS:-30} s each (libFuzzer, clang 14, ASan+UBSan)"
"$ROOT/scripts/fuzz.sh" "${PGGW_FUZZ_SECONDS:-30}"
echo "== all tests passed"
