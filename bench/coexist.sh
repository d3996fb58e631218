#!/bin/sh
# What two busy cores cost each other here, with nothing shared (issue 18's
# floor for threads 1 -> 2): bench/threads.sh's mapping row at threads 1,
# pinned to CPU 0, (a) alone, (b) beside a busy loop that touches no memory
# pinned to CPU 1, (c) beside a second identical run pinned to CPU 1;
# interleaved rounds, CPU (user + sys) of the CPU-0 run each time. Needs a
# quiet machine: under load CPU 1 is never idle, so (a) is not alone.
# (b) / (a) above 1 means the two vCPUs share a physical core (host SMT);
# (c) / (b) above 1 is shared caches and memory bandwidth. threads 2 cannot
# do better than 2 / ((c) / (a)) times threads 1.
# Env: SLUICE_BIN (build/sluice), N (1000000), ROUNDS (5), BENCH_DIR.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
threads_rows
W=${BENCH_DIR:-/tmp/sluice-bench-coexist}
mkdir -p "$W"
N=${N:-1000000}
config 1 "$MAP" > "$W/map.yaml"
BIN=${SLUICE_BIN:-build/sluice}
ROUNDS=${ROUNDS:-5}
spin=
trap '[ -z "$spin" ] || kill "$spin" 2>/dev/null' EXIT
cpu() { bench/threadcpu.py taskset -c 0 "$BIN" run --log-level warn "$W/map.yaml" | awk '{print $2}'; }
: > "$W/a"; : > "$W/b"; : > "$W/c"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$ROUNDS"); do
  cpu >> "$W/a"
  taskset -c 1 awk 'BEGIN { for (;;) x++ }' & spin=$!
  cpu >> "$W/b"
  kill "$spin"; wait "$spin" 2>/dev/null || true; spin=
  taskset -c 1 "$BIN" run --log-level warn "$W/map.yaml" > /dev/null & other=$!
  cpu >> "$W/c"
  wait "$other"
done
a=$(median < "$W/a"); b=$(median < "$W/b"); c=$(median < "$W/c")
figure "$a" "alone"; figure "$b" "beside a busy loop"; figure "$c" "beside a second run"
echo "| mapping, threads 1, CPU of $N messages (medians of $ROUNDS) | alone | beside a busy loop | beside a second run |"
echo "| --- | --- | --- | --- |"
echo "| CPU s (all: $(paste -sd' ' "$W/a") / $(paste -sd' ' "$W/b") / $(paste -sd' ' "$W/c")) | $a | $b ($(echo "$b $a" | awk '{printf "%.2f", $1/$2}')×) | $c ($(echo "$c $a" | awk '{printf "%.2f", $1/$2}')×) |"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
