#!/bin/sh
# cache.get's hit path from Lua on one core (issue 15: >= 2M lookups/s),
# beside the same script reading a plain Lua table: generate -> lua -> drop,
# each message doing LOOKUPS reads of keys that are there (1000 distinct
# keys, filled by the first message), by wall clock and by the process's
# CPU time. Prints Markdown rows for
# bench/RESULTS.md. Env: N (messages, default 1000000), LOOKUPS (per message,
# default 100), RUNS (default 3), THREADS (pipeline.threads, default 1: one
# core; 2: two workers sharing the resource's lock).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-1000000}
LOOKUPS=${LOOKUPS:-100}
RUNS=${RUNS:-3}
WORK=${BENCH_DIR:-/tmp/sluice-bench}
mkdir -p "$WORK"

now_ns() { date +%s%N; }

# config FILL READ: the processor fills 1000 keys once (FILL, with K[i] the
# key) and reads LOOKUPS of them per message (READ, an expression of k).
config() {
  cat <<YAML
cache_resources:
  - label: bench
    memory: {default_ttl: 0}
input:
  generate: {count: $N, interval: 0, batch_size: 1024, mapping: 'return "x"'}
pipeline:
  threads: ${THREADS:-1}
  processors:
    - lua: |
        if not K then
          K, T = {}, {}
          for i = 1, 1000 do K[i] = "key-" .. i; $1 end
        end
        local n = 0
        for j = 1, $LOOKUPS do
          local k = K[j * 7 % 1000 + 1]
          if $2 then n = n + 1 end
        end
        if n ~= $LOOKUPS then error("a lookup missed") end
output:
  drop: {}
YAML
}

# Lookups per second of a config, by wall clock and by the CPU time the
# process used (which a machine shared with other work disturbs less):
# "WALL CPU", medians of RUNS.
rate() {
  for _ in $(seq "$RUNS"); do
    s=$(now_ns)
    /usr/bin/time -f "%U %S" -o "$WORK/cache.t" "$BIN" run --log-level warn "$1" >/dev/null || fail "sluice run $1 failed"
    e=$(now_ns)
    echo "$N $LOOKUPS $s $e" | awk '{printf "%.0f\n", $1 * $2 / (($4 - $3) / 1e9)}' >> "$WORK/cache.wall"
    awk -v n="$N" -v l="$LOOKUPS" '{printf "%.0f\n", n * l / ($1 + $2)}' "$WORK/cache.t" >> "$WORK/cache.cpu"
  done
  echo "$(median < "$WORK/cache.wall") $(median < "$WORK/cache.cpu")"
  rm -f "$WORK/cache.wall" "$WORK/cache.cpu"
}

config 'cache.set("bench", K[i], "value-" .. i)' 'cache.get("bench", k)' > "$WORK/cache_get.yaml"
config 'T[K[i]] = "value-" .. i' 'T[k]' > "$WORK/table_get.yaml"
rm -f "$WORK/cache.wall" "$WORK/cache.cpu"
set -- $(rate "$WORK/cache_get.yaml") $(rate "$WORK/table_get.yaml")
for f in "$@"; do figure "$f" "lookups/s"; done
echo "| cache.get hit from Lua (memory, 1000 keys), $LOOKUPS per message | $1 lookups/s (by CPU time: $2) | plain Lua table lookup, same loop: $3 lookups/s (by CPU time: $4) | $(echo "$1 $3" | awk '{printf "%.2f", $1 / $2}') |"
