#!/bin/sh
# A/B of two sluice binaries serving one HTTP config (bench/ab.sh is for
# runs that end), interleaved so that the load of a shared machine hits both
# alike: wrk (2 threads, 100 connections, 10 s, the POST of bench/http.sh)
# against each in turn, ROUNDS times; prints each run's req/s and the CPU
# the server used per request (µs, user+sys from /proc: steadier than req/s
# on a shared machine, where wrk competes for the same cores), and the medians.
# Usage: bench/ab_http.sh BIN_A BIN_B CONFIG PORT [ROUNDS (default 6)]
set -eu
. "$(dirname "$0")/lib.sh"
a=$1 b=$2 cfg=$3 port=$4 rounds=${5:-6}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
wrk_post "$work/post.lua"
for _ in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    "$bin" run --log-level warn "$cfg" & pid=$!
    wait_http "http://127.0.0.1:$port/ping" $pid
    t0=$(awk '{print $14 + $15}' /proc/$pid/stat)
    wrk -t2 -c100 -d10s -s "$work/post.lua" "http://127.0.0.1:$port/" > "$work/wrk.out"
    t1=$(awk '{print $14 + $15}' /proc/$pid/stat)
    kill $pid; wait $pid || true
    wrk_check "$work/wrk.out"
    reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
    echo "$bin $(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out") $(echo "$t0 $t1 $reqs $(getconf CLK_TCK)" |
      awk '{printf "%.2f", ($2 - $1) * 1e6 / $4 / $3}')" >> "$work/runs"
  done
done
cat "$work/runs"
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
for bin in "$a" "$b"; do
  echo "$bin: median $(grep "^$bin " "$work/runs" | awk '{print $2}' | median) req/s," \
    "$(grep "^$bin " "$work/runs" | awk '{print $3}' | median) µs CPU per request"
done
