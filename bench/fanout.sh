#!/bin/bash
# Broadcast fan-out before/after: bench/latency.sh (generate → http_server
# output → N SSE or WebSocket clients in CLIENTS node processes, sluice pinned
# to CPU 0 and the clients to CPU 1) run for two binaries in the same run,
# interleaved (BASE, NEW, BASE, NEW, ...), RUNS times each, for two loads:
#   max: generate every 1 ms (the interval counts from the end of a tick's
#        work, so the rate is what the fan-out allows): deliveries/s;
#   20/s: generate every 50 ms (at most 20 msg/s): latency p50/p99.
# Each row: median of the runs, column by column; "deliveries/s" = events
# received in the window / SECS; "sluice CPU µs per delivery" = sluice's CPU
# time in the window (perf stat task-clock) / events received: on a shared machine,
# where sluice may wait for its core (the run-queue wait column), the figure
# that depends least on the other processes; "clients CPU µs per delivery":
# the same for the client processes (from their ticks: coarser).
#
# Usage: BASE=old/sluice [NEW=build/sluice] bench/fanout.sh [N]   (N: 10000)
#   PROTOS="sse ws"   LOADS="max 20/s" (or a generate interval: 500ms)   RUNS=3   SECS=10   QUIET=0   HOLD=30 (s the
#   clients have to connect before the broadcast starts)
#   (the other variables of bench/latency.sh pass through: CLIENT=c measures
#   with bench/fanclient.c instead of node, CLIENTS=2 is enough for it)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-10000}
BASE=${BASE:?set BASE to the binary to compare with}
NEW=${NEW:-build/sluice}
RUNS=${RUNS:-3}
export SECS=${SECS:-10} QUIET=${QUIET:-0} HOLD=${HOLD:-30} PERF=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "| load | proto | binary | msg/s sent | deliveries/s | events / expected | p50 | p99 | max | sluice CPU µs per delivery | sluice CPU | clients CPU µs per delivery | clients CPU | sluice run-queue wait | sluice peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for load in ${LOADS:-max 20/s}; do
  case $load in max) interval=1ms;; 20/s) interval=50ms;; *ms) interval=$load;; *) fail "LOADS: max, 20/s or an interval (500ms)";; esac
  for proto in ${PROTOS:-sse ws}; do
    : > "$WORK/base"; : > "$WORK/new"
    for ((r = 1; r <= RUNS; r++)); do
      for which in base new; do
        bin=$BASE; [ $which = new ] && bin=$NEW
        SLUICE_BIN=$bin PROTO=$proto INTERVAL=$interval RUNS=1 bench/latency.sh "$N" > /dev/null 2> "$WORK/err" || true
        line=$(sed -n 's/^\[[a-z]* n=[0-9]* run 1\] //p' "$WORK/err" | grep '^{' || true)
        [ -n "$line" ] || fail "no report from $which: $(tail -5 "$WORK/err")"
        echo "[$load $proto $which run $r] $line" >&2
        echo "$line" >> "$WORK/$which"
      done
    done
    for which in base new; do
      bin=$BASE; [ $which = new ] && bin=$NEW
      node -e '
        const runs = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
        const med = (f) => { const v = runs.map(f).sort((a, b) => a - b); return v[Math.floor((v.length - 1) / 2)]; };
        const n = (x) => Math.round(x).toLocaleString("en-US");
        const secs = Number(process.argv[5]);
        console.log(`| ${process.argv[2]} | ${process.argv[3]} | ${process.argv[4]} | ${n(med((r) => r.rate))} | ` +
          `${n(med((r) => r.events / secs))} | ${n(med((r) => r.events))} / ${n(med((r) => r.expected))} | ` +
          `${med((r) => r.p50)} ms | ${med((r) => r.p99)} ms | ${med((r) => r.max)} ms | ` +
          `${med((r) => r.cpu_us_per_event) === null ? "-" : med((r) => r.cpu_us_per_event).toFixed(2)} | ${med((r) => r.sluice_cpu)}% | ` +
          `${med((r) => r.clients_us_per_event) === null ? "-" : med((r) => r.clients_us_per_event).toFixed(2)} | ${med((r) => r.clients_cpu)}% | ` +
          `${n(med((r) => r.sluice_runq_wait_ms))} ms | ${med((r) => r.sluice_peak_rss_mib)} MiB |`);' \
        "$WORK/$which" "$load" "$proto" "$bin" "$SECS"
    done
  done
done
