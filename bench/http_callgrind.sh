#!/bin/sh
# Instructions a request of one sluice binary serving one HTTP config, under
# callgrind: on a shared machine the CPU per request does not resolve a 5%
# change, instruction counts do (bench/RESULTS.md, issue 18). wrk (1 thread,
# 8 connections, the POST of bench/http.sh) sends 200 requests first, not
# counted (traces, caches, the VM's warm-up), then N counted; callgrind runs
# one thread at a time, so cross-thread wake-ups coalesce more than live and
# the kernel's share is not counted. wrk runs for its whole -d however early
# its threads stop: CG_SECONDS (default 20) bounds the counted run, whose
# instructions are divided by the requests wrk saw answered.
# Usage: bench/http_callgrind.sh BIN CONFIG PORT [N (default 3000)] [OUT]
# (CONFIG serves POST / at 127.0.0.1:PORT.) Prints "requests instructions per_request".
set -eu
. "$(dirname "$0")/lib.sh"
bin=$1 cfg=$2 port=$3 n=${4:-3000}
work=$(mktemp -d)
out=${5:-$work/callgrind.out}
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
pid=
for count in 200 "$n"; do
  cat > "$work/post-$count.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"user":"ada","event":"click","n":42}'
wrk.headers["Content-Type"] = "application/json"
local n = 0
response = function() n = n + 1 if n >= $count then wrk.thread:stop() end end
LUA
done
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$bin" run --log-level warn "$cfg" \
  2> "$work/valgrind.err" & pid=$!
for _ in $(seq 600); do curl -s -o /dev/null -m 1 "http://127.0.0.1:$port/ping" && break; sleep 0.1; done
wrk -t1 -c8 -d3s -s "$work/post-200.lua" "http://127.0.0.1:$port/" > /dev/null
callgrind_control -i on $pid > /dev/null
wrk -t1 -c8 -d"${CG_SECONDS:-20}s" -s "$work/post-$n.lua" "http://127.0.0.1:$port/" > "$work/wrk.out"
callgrind_control -i off $pid > /dev/null
kill $pid
wait $pid || true
pid=
wrk_check "$work/wrk.out"
reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
figure "$total" "callgrind's total"
echo "$reqs $total $(echo "$total $reqs" | awk '{printf "%d", $1 / $2}')"
