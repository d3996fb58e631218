#!/bin/sh
# pipeline.threads 1 against 2 on the CPU-bound rows (issue 18): generate →
# Lua JSON mapping → drop, and generate → one-field filter → drop; runs
# interleaved (1, 2, 1, 2, ...); the input alternates two constant messages
# (a mapping that builds each one would cost more than the processors),
# medians of RUNS, with the CPU time each run used (user + sys; at threads 2
# split into the stream's loop, the main thread, and the pool workers:
# bench/threadcpu.py) and the load average, since the machine is shared.
# BASE_BIN (optional): a build of main, for the threads-1 rows generate → drop
# and → lua pass-through (no regression when threads is 1).
# Usage: bench/threads.sh. Env: N (messages, default 1000000), RUNS (default 5).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-1000000}
RUNS=${RUNS:-5}
WORK=${BENCH_DIR:-/tmp/sluice-bench-threads}
mkdir -p "$WORK"

config() { # $1 = threads, $2 = processor YAML
  cat <<YAML
input:
  generate:
    count: $N
    interval: 0
    batch_size: 1024
    mapping: |
      return i % 2 == 0 and '{"user":"user-000042","event":"page_view","path":"/products/42/details","ts":1700000042,"agent":"Mozilla/5.0 (X11; Linux x86_64)","tags":["a","b","c"],"score":42.5,"ok":true}'
        or '{"user":"user-000043","event":"page_view","path":"/products/43/details","ts":1700000043,"agent":"Mozilla/5.0 (X11; Linux x86_64)","tags":["a","b","c"],"score":42.5,"ok":true}'
max_in_flight: 16
pipeline:
  threads: $1
  processors:
$2
output:
  drop: {}
YAML
}

MAP="    - lua: |
        this.id = uuid_v4()
        this.processed = true"
FILTER="    - lua: 'if this.ts % 2 == 0 then return deleted() end'"
PASS="    - lua: 'return nil'"

# one run: prints "msg/s cpu_seconds loop_cpu_seconds" (loop: the main
# thread, where the stream's input, output and acks run; the rest of the CPU
# is the pool workers')
one() { # $1 = binary, $2 = config
  bench/threadcpu.py "$1" run --log-level warn "$2" > "$WORK/t" || fail "sluice run $2 failed"
  awk -v n="$N" '{printf "%.0f %.2f %.2f\n", n / $1, $2, $3}' "$WORK/t"
}

row() { # $1 = name, $2 = processor YAML
  config 1 "$2" > "$WORK/t1.yaml"
  config 2 "$2" > "$WORK/t2.yaml"
  : > "$WORK/r1"; : > "$WORK/r2"
  for _ in $(seq "$RUNS"); do
    one "$BIN" "$WORK/t1.yaml" >> "$WORK/r1"
    one "$BIN" "$WORK/t2.yaml" >> "$WORK/r2"
  done
  r1=$(awk '{print $1}' "$WORK/r1" | median); c1=$(awk '{print $2}' "$WORK/r1" | median)
  r2=$(awk '{print $1}' "$WORK/r2" | median); c2=$(awk '{print $2}' "$WORK/r2" | median)
  l2=$(awk '{print $3}' "$WORK/r2" | median); w2=$(awk '{print $2 - $3}' "$WORK/r2" | median)
  figure "$r1" "$1 threads 1"; figure "$r2" "$1 threads 2"
  echo "| $1 | threads 1: $r1 msg/s (CPU $c1 s) | threads 2: $r2 msg/s (CPU $c2 s: loop $l2, workers $w2) | $(echo "$r2 $r1" | awk '{printf "%.2f", $1/$2}')× |"
}

# threads 1 on this branch against main: the same config (threads: 1 is main's default too)
base_row() { # $1 = name, $2 = processor YAML or empty
  if [ -n "$2" ]; then config 1 "$2"; else config 1 "    []" | sed 's/^  processors:$/  processors: []/; /^    \[\]$/d'; fi > "$WORK/b.yaml"
  : > "$WORK/rb"; : > "$WORK/rn"
  for _ in $(seq "$RUNS"); do
    one "$BASE_BIN" "$WORK/b.yaml" >> "$WORK/rb"
    one "$BIN" "$WORK/b.yaml" >> "$WORK/rn"
  done
  rb=$(awk '{print $1}' "$WORK/rb" | median); rn=$(awk '{print $1}' "$WORK/rn" | median)
  figure "$rb" "$1 main"; figure "$rn" "$1 branch"
  echo "| $1, threads 1 | this branch: $rn msg/s | main: $rb msg/s | $(echo "$rn $rb" | awk '{printf "%.2f", $1/$2}')× |"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
echo "| benchmark ($N messages of ~200 B, batches of 1024, medians of $RUNS) | | | 2 / 1 |"
echo "| --- | --- | --- | --- |"
row "generate → Lua JSON mapping (decode, +uuid_v4, +bool, encode) → drop" "$MAP"
row "generate → Lua one-field filter (\`this.ts % 2\`, drops half) → drop" "$FILTER"
if [ -n "${BASE_BIN:-}" ]; then
  echo "| threads 1: no extra hop | | | branch / main |"
  base_row "generate → drop" ""
  base_row "generate → lua pass-through → drop" "$PASS"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
