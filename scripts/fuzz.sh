#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang 14 in build-fuzz and runs each for a
# bounded time, in parallel up to the CPU count. Fails on any crash, leak, timeout or sanitizer
# report, and says where the input that caused it was saved.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 30 s, every target)
#
# The corpus each run grows is kept in build-fuzz/corpus/<target> (the seeds in
# tests/fuzz/corpus/<target> are read, never written); crashing inputs land in
# build-fuzz/artifacts/<target>/. To reproduce one: build-fuzz/fuzz_<target> <file>.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
build=build-fuzz
jobs=${PGGW_FUZZ_JOBS:-$(nproc)}

CXX=${CXX_FUZZ:-clang++-14}
command -v "$CXX" >/dev/null || { echo "fuzz.sh: $CXX not found (scripts/install-deps.sh)" >&2; exit 1; }
if [ ! -f "$build/build.ninja" ] || [ ! -f "$build/fuzz_targets.txt" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX" \
    -DPGGW_FUZZ=ON -DPGGW_TESTS=OFF -DPGGW_BENCH=OFF -DPGGW_WERROR=ON >/dev/null
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  # Every target the build defines (tests/fuzz/CMakeLists.txt's list, written at configure).
  mapfile -t targets <"$build/fuzz_targets.txt"
fi
nice ninja -C "$build" -j"$jobs" "${targets[@]/#/fuzz_}" >"$build/fuzz-build.log" 2>&1 || {
  tail -40 "$build/fuzz-build.log" >&2
  echo "fuzz.sh: build failed (full log: $build/fuzz-build.log)" >&2
  exit 1
}

logs=$build/fuzz-logs
rm -rf "$logs"
mkdir -p "$logs"
run_one() {
  local t=$1 seconds=$2 build=$3
  local corpus=$build/corpus/$t artifacts=$build/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  local extra=()
  # Inputs longer than the default 4096 bytes where a bound is checked beyond it.
  [ "$t" = channel_binding ] && extra+=(-max_len=20000)
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: leaks that grow.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "./$build/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "${extra[@]}" \
      "$corpus" "tests/fuzz/corpus/$t" >"$build/fuzz-logs/$t.log" 2>&1
}
export -f run_one
start=$(date +%s)
status=0
printf '%s\n' "${targets[@]}" |
  xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} "$seconds" "$build" || status=$?
elapsed=$(( $(date +%s) - start ))

failed=0
for t in "${targets[@]}"; do
  log=$logs/$t.log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "$build/corpus/$t" -type f | wc -l)
  if grep -qE '^(==[0-9]+== ?ERROR|SUMMARY: |.*invariant failed|.*runtime error)' "$log" ||
     ! grep -q '^Done ' "$log"; then
    failed=1
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "FAIL $t: $(grep -m1 -E 'ERROR|SUMMARY|invariant failed|runtime error' "$log" || tail -1 "$log")"
    echo "     input: ${crash:-none saved}; log: $log; reproduce: $build/fuzz_$t ${crash:-<input>}"
  else
    printf 'ok   %-20s %10s runs %8s exec/s  corpus %s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus"
  fi
done
echo "fuzz.sh: ${#targets[@]} targets, ${seconds} s each, $jobs at a time: ${elapsed} s"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ] || { echo "fuzz.sh: FAILED" >&2; exit 1; }
