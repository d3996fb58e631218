#!/bin/sh
# Two builds side by side on bench/threads.sh's configs, interleaved (A, S at
# threads 1, then at threads 2, per round), for before/after CPU on a shared
# machine. Prints per run: build, threads, row, wall s, CPU s, loop CPU s
# (bench/threadcpu.py), load. Env: A, S (binaries), N, ROUNDS (3), ROWS
# ("filter mapping"), BENCH_DIR.
set -eu
cd "$(dirname "$0")/.."
: "${A:?A=binary of main}" "${S:?S=binary of the branch}"
N=${N:-1000000}
ROUNDS=${ROUNDS:-3}
W=${BENCH_DIR:-/tmp/sluice-bench-ab}
mkdir -p "$W"
. bench/lib.sh
threads_rows
for row in ${ROWS:-filter mapping}; do
  P=$FILTER; [ "$row" = mapping ] && P=$MAP
  config 1 "$P" > "$W/$row-1.yaml"; config 2 "$P" > "$W/$row-2.yaml"
done
for _ in $(seq "$ROUNDS"); do
  for row in ${ROWS:-filter mapping}; do
    for t in 1 2; do
      for b in A S; do
        eval "bin=\$$b"
        echo "$b $t $row $(bench/threadcpu.py "$bin" run --log-level warn "$W/$row-$t.yaml") $(cut -d' ' -f1 /proc/loadavg)"
      done
    done
  done
done
