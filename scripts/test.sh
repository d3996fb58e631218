#!/bin/sh
# Every test: C units (ctest) and busted specs on the release build, the same
# again on an ASan+UBSan build, and a bounded libFuzzer run of the config
# loader. Ends with one line: "N passed, N failed". Exit 1 on any failure.
set -u
cd "$(dirname "$0")/.."
JOBS=$(nproc)
PASSED=0
FAILED=0
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)

# Adds the counts of a ctest log ("x% tests passed, F tests failed out of T").
count_ctest() {
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$1" | tail -1)
  f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/')
  t=$(echo "$line" | sed -E 's/.*out of ([0-9]+).*/\1/')
  if [ -z "$line" ]; then FAILED=$((FAILED + 1)); return; fi
  PASSED=$((PASSED + t - f)); FAILED=$((FAILED + f))
}

# Adds the counts of a busted log ("S successes / F failures / E errors / P pending").
count_busted() {
  line=$(grep -E "[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?" "$1" | tail -1)
  if [ -z "$line" ]; then FAILED=$((FAILED + 1)); return; fi
  s=$(echo "$line" | sed -E 's/^([0-9]+) success.*/\1/')
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) failures?.*/\1/')
  e=$(echo "$line" | sed -E 's/.* ([0-9]+) errors?.*/\1/')
  PASSED=$((PASSED + s)); FAILED=$((FAILED + f + e))
}

run_suite() { # $1 = label, $2 = build dir
  echo "== $1: C units"
  ctest --test-dir "$2" --output-on-failure -j "$JOBS" > "$LOG/ctest" 2>&1
  tail -n 3 "$LOG/ctest"
  grep -q "tests failed out of" "$LOG/ctest" && ! grep -q " 0 tests failed" "$LOG/ctest" && cat "$LOG/ctest"
  count_ctest "$LOG/ctest"
  echo "== $1: busted specs"
  SLUICE_BIN="$2/sluice" busted --lua=luajit -o plainTerminal spec/ > "$LOG/busted" 2>&1
  grep -E "^(Failure|Error) " -A 14 "$LOG/busted" | head -n 300
  grep -E "[0-9]+ successes? / " "$LOG/busted" || tail -n 20 "$LOG/busted"
  count_busted "$LOG/busted"
}

run_suite release build

echo "== building with ASan + UBSan"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=ON > "$LOG/cmake" 2>&1 &&
  ninja -C build-asan -j "$JOBS" > "$LOG/ninja" 2>&1 || { cat "$LOG/cmake" "$LOG/ninja"; FAILED=$((FAILED + 1)); }
if [ -x build-asan/sluice ]; then
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86" \
  LSAN_OPTIONS="suppressions=$(pwd)/scripts/lsan.supp:print_suppressions=0" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    run_suite sanitizers build-asan
fi

echo "== fuzzing the config loader, the HTTP/WebSocket server and segment recovery (${FUZZ_SECONDS:-20}s each)"
if CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSL_FUZZ=ON -DSL_SANITIZE=ON > "$LOG/fcmake" 2>&1 &&
   ninja -C build-fuzz -j "$JOBS" fuzz_conf fuzz_http fuzz_seglog > "$LOG/fninja" 2>&1; then
  for target in fuzz_conf fuzz_http fuzz_seglog; do
    mkdir -p "build-fuzz/corpus-$target"
    [ "$target" = fuzz_conf ] && cp examples/*.yaml "build-fuzz/corpus-$target/" 2>/dev/null
    if LSAN_OPTIONS="suppressions=$(pwd)/scripts/lsan.supp" \
       "build-fuzz/$target" -max_total_time="${FUZZ_SECONDS:-20}" -max_len=4096 -print_final_stats=0 \
         "build-fuzz/corpus-$target" > "$LOG/fuzz" 2>&1; then
      echo "$target: no crash ($(grep -o 'DONE.*cov: [0-9]*' "$LOG/fuzz" | grep -o 'cov: [0-9]*'))"; PASSED=$((PASSED + 1))
    else
      tail -n 40 "$LOG/fuzz"; FAILED=$((FAILED + 1))
    fi
  done
else
  cat "$LOG/fcmake" "$LOG/fninja" | tail -n 30; FAILED=$((FAILED + 1))
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
