#!/bin/sh
# Where a request's CPU goes, thread by thread: one sluice binary serving one
# HTTP config under wrk (2 threads, 100 connections, the POST of
# bench/http.sh); for each thread that ran, its CPU (user + sys, from
# /proc/PID/task/TID/stat) per request and its context switches (voluntary:
# it slept, e.g. in epoll_wait; involuntary: preempted) per 1,000 requests.
# The engine's loop is the main thread; the others are HTTP workers and pool
# workers (unnamed: tell them apart by their CPU). perf has no cycle
# counters on this machine: this shows how much each thread takes and how
# often it sleeps and wakes, which bench/ab_http.sh's one figure hides.
# Usage: bench/http_threads.sh BIN CONFIG PORT [SECONDS (default 5)]
# (CONFIG serves POST / at 127.0.0.1:PORT.)
set -eu
. "$(dirname "$0")/lib.sh"
bin=$1 cfg=$2 port=$3 secs=${4:-5}
work=$(mktemp -d)
pid=
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
wrk_post "$work/post.lua"
"$bin" run --log-level warn "$cfg" & pid=$!
wait_http "http://127.0.0.1:$port/ping" $pid
# "tid ticks voluntary involuntary" for each thread
snap() {
  for t in /proc/$pid/task/*; do
    echo "$(basename "$t") $(awk '{print $14 + $15}' "$t/stat")" \
      "$(awk '/^voluntary_ctxt/ {v = $2} /^nonvoluntary_ctxt/ {n = $2} END {print v, n}' "$t/status")"
  done | sort
}
engine=$pid   # the main thread's id is the process's
snap > "$work/before"
wrk -t2 -c100 -d"${secs}s" -s "$work/post.lua" "http://127.0.0.1:$port/" > "$work/wrk.out"
snap > "$work/after"
kill $pid
wait $pid || true
pid=
wrk_check "$work/wrk.out"
reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
echo "$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out") req/s, $reqs requests, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| thread | CPU µs per request | voluntary switches per 1k requests | involuntary per 1k |"
echo "| --- | --- | --- | --- |"
join "$work/before" "$work/after" | awk -v n="$reqs" -v hz="$(getconf CLK_TCK)" -v main="$engine" '
  { cpu = ($5 - $2) * 1e6 / hz / n; vol = ($6 - $3) * 1000 / n; inv = ($7 - $4) * 1000 / n; t += cpu; tv += vol; ti += inv
    if (cpu > 0 || vol > 1) printf "| %s %s | %.2f | %.1f | %.1f |\n", $1 == main ? "engine" : "thread", $1, cpu, vol, inv }
  END { printf "| all | %.2f | %.1f | %.1f |\n", t, tv, ti }'
