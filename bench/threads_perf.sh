#!/bin/sh
# Where threads 2 spends what threads 1 does not (issue 18): perf records
# (cpu-clock samples, so it works in a guest without hardware counters) of
# bench/threads.sh's two rows at pipeline.threads 1 and 2, interleaved
# (1, 2, 1, 2, ...), then bench/perfdiff.py: the stream's loop against the
# pool workers, and the symbols whose time changed most (means of ROUNDS).
# Env: SLUICE_BIN (build/sluice), N (messages, 4000000), ROUNDS (3), ROWS
# ("mapping filter"), BENCH_DIR; uses `perf`.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-4000000}
ROUNDS=${ROUNDS:-3}
W=${BENCH_DIR:-/tmp/sluice-bench-threads-perf}
mkdir -p "$W"
threads_rows
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, N=$N, $ROUNDS rounds"
for row in ${ROWS:-mapping filter}; do
  P=$FILTER; [ "$row" = mapping ] && P=$MAP
  config 1 "$P" > "$W/$row-1.yaml"; config 2 "$P" > "$W/$row-2.yaml"
  for r in $(seq "$ROUNDS"); do
    for t in 1 2; do
      perf record -q -e cpu-clock -F 1000 -o "$W/$row-$t-$r.data" "$BIN" run --log-level warn "$W/$row-$t.yaml" \
        > /dev/null 2>&1 || fail "perf record of $row at threads $t failed"
    done
  done
  list() { seq "$ROUNDS" | sed "s|.*|$W/$row-$1-&.data|" | paste -sd, -; }
  echo "## $row: threads 1 (A) -> threads 2 (B)"
  bench/perfdiff.py "$(list 1)" "$(list 2)" "${TOP:-30}"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
