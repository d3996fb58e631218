#!/bin/sh
# A/B of two sluice binaries on one config, runs interleaved so that the
# load of a shared machine hits both alike; prints the medians of wall time
# and of CPU time (user + sys, less sensitive to other processes).
# Usage: bench/ab.sh BIN_A BIN_B CONFIG [RUNS (default 9)]
set -eu
a=$1 b=$2 cfg=$3 runs=${4:-9}
out=$(mktemp)
for _ in $(seq "$runs"); do
  for bin in "$a" "$b"; do
    s=$(date +%s%N)
    /usr/bin/time -f "%U %S" -o "$out.t" "$bin" run --log-level warn "$cfg" >/dev/null
    e=$(date +%s%N)
    echo "$bin $(( (e - s) / 1000000 )) $(cat "$out.t")" >> "$out"
  done
done
for bin in "$a" "$b"; do
  wall=$(grep "^$bin " "$out" | awk '{print $2}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  cpu=$(grep "^$bin " "$out" | awk '{printf "%.2f\n", $3 + $4}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  echo "$bin: wall ${wall} ms, cpu ${cpu} s (median of $runs)"
done
rm -f "$out" "$out.t"
