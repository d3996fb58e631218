#!/bin/sh
# A/B of two sluice binaries serving one HTTP config (bench/ab.sh is for
# runs that end), interleaved so that the load of a shared machine hits both
# alike: wrk (2 threads, 100 connections, 10 s, the POST of bench/http.sh)
# against each in turn, ROUNDS times; prints each run's req/s and the medians.
# Usage: bench/ab_http.sh BIN_A BIN_B CONFIG PORT [ROUNDS (default 6)]
set -eu
. "$(dirname "$0")/lib.sh"
a=$1 b=$2 cfg=$3 port=$4 rounds=${5:-6}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"user":"ada","event":"click","n":42}'
wrk.headers["Content-Type"] = "application/json"
LUA
for _ in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    "$bin" run --log-level warn "$cfg" & pid=$!
    wait_http "http://127.0.0.1:$port/ping" $pid
    wrk -t2 -c100 -d10s -s "$work/post.lua" "http://127.0.0.1:$port/" > "$work/wrk.out"
    kill $pid; wait $pid || true
    wrk_check "$work/wrk.out"
    echo "$bin $(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")" >> "$work/runs"
  done
done
cat "$work/runs"
for bin in "$a" "$b"; do
  echo "$bin: median $(grep "^$bin " "$work/runs" | awk '{print $2}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}') req/s"
done
