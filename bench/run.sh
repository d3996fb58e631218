#!/bin/sh
# Benchmarks of issue 2, each beside a peer in the same run; prints Markdown
# rows for bench/RESULTS.md. Usage: bench/run.sh [all|lua|ndjson|startup]
# Env: N (messages, default 2000000), SIZE_MB (NDJSON size, default 1024), RUNS (default 3).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-2000000}
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
WORK=${BENCH_DIR:-/tmp/sluice-bench}
mkdir -p "$WORK"
what=${1:-all}

now_ns() { date +%s%N; }

# Messages per second of a config run over $2 (default $N) generated messages (median of RUNS).
rate() {
  cfg=$1; count=${2:-$N}
  for _ in $(seq "$RUNS"); do
    s=$(now_ns); "$BIN" run --log-level warn "$cfg" >/dev/null || fail "sluice run $cfg failed"; e=$(now_ns)
    echo "$count $s $e" | awk '{printf "%.0f\n", $1 / (($3 - $2) / 1e9)}'
  done | median
}

gen_config() { # $1 = processor YAML (may be empty), $2 = batch size (1024), $3 = messages ($N)
  cat <<YAML
input:
  generate:
    count: ${3:-$N}
    interval: 0
    batch_size: ${2:-1024}
    mapping: |
      return '{"user":"user-000042","event":"page_view","path":"/products/42/details","ts":1700000042,"agent":"Mozilla/5.0 (X11; Linux x86_64)","tags":["a","b","c"],"score":42.5,"ok":true}'
max_in_flight: 16
pipeline:
  processors:
$1
output:
  drop: {}
YAML
}

bench_lua() {
  gen_config "    []" | sed 's/^  processors:$/  processors: []/; /^    \[\]$/d' > "$WORK/base.yaml"
  gen_config "    - lua: 'return nil'" > "$WORK/pass.yaml"
  gen_config "    - lua: |
        this.id = uuid_v4()
        this.processed = true" > "$WORK/map.yaml"
  # a loop of 50 steps per message, and batches of one message (a request
  # each): where the step budget's checks and the cost of a call show
  gen_config "    - lua: |
        local s = 0
        for k = 1, 50 do s = s + k end
        if s < 0 then return deleted() end" > "$WORK/loop.yaml"
  gen_config "    - lua: 'if this.ts % 2 == 0 then return deleted() end'" > "$WORK/filter.yaml"
  gen_config "    - lua: 'return nil'" 1 $((N / 10)) > "$WORK/pass1.yaml"
  base=$(rate "$WORK/base.yaml")
  pass=$(rate "$WORK/pass.yaml")
  map=$(rate "$WORK/map.yaml")
  filter=$(rate "$WORK/filter.yaml")
  loop=$(rate "$WORK/loop.yaml")
  pass1=$(rate "$WORK/pass1.yaml" $((N / 10)))
  peer=$(for _ in $(seq "$RUNS"); do luajit bench/peer_map.lua "$N"; done | median)
  figure "$base" "generate → drop"; figure "$pass" "lua pass-through"; figure "$map" "lua mapping"
  figure "$loop" "lua loop"; figure "$filter" "lua filter"; figure "$pass1" "lua pass-through, batches of one"
  figure "$peer" "LuaJIT+cjson loop"
  echo "| generate → drop (no processor) | $base msg/s | | |"
  echo "| generate → lua pass-through (\`return nil\`) → drop | $pass msg/s | | |"
  echo "| generate → lua loop of 50 steps → drop | $loop msg/s | | |"
  echo "| generate → lua filter on one field (\`this.ts % 2\`) → drop | $filter msg/s | | |"
  echo "| generate, batches of one → lua pass-through → drop | $pass1 msg/s | | |"
  echo "| generate → lua JSON mapping (decode, +uuid_v4, +bool, encode) → drop | $map msg/s | plain LuaJIT+cjson loop: $peer msg/s | $(echo "$map $peer" | awk '{printf "%.2f", $1/$2}') |"
}

bench_ndjson() {
  f="$WORK/docs-$SIZE_MB.ndjson"
  if [ ! -s "$f" ]; then
    luajit bench/gen_docs.lua $((SIZE_MB * 1024 * 1024 / 205)) > "$f"
  fi
  bytes=$(stat -c %s "$f")
  cat > "$WORK/ndjson.yaml" <<YAML
input:
  stdin: {max_buffer: 64KiB}
pipeline:
  processors:
    - lua: |
        this.id = uuid_v4()
        this.processed = true
output:
  stdout: {}
YAML
  s_rows=""; j_rows=""
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -o "$WORK/t.s" "$BIN" run --log-level warn "$WORK/ndjson.yaml" < "$f" > /dev/null ||
      fail "sluice run ndjson.yaml failed"
    /usr/bin/time -f "%e %M" -o "$WORK/t.j" jq -c '.id = "6f1c2a52-8d0b-4c1e-9a53-2b1f0e7d9c44" | .processed = true' < "$f" > /dev/null ||
      fail "jq failed"
    s_rows="$s_rows$(cat "$WORK/t.s")
"; j_rows="$j_rows$(cat "$WORK/t.j")
"
  done
  s_t=$(printf '%s' "$s_rows" | awk '{print $1}' | median); s_m=$(printf '%s' "$s_rows" | awk '{print $2}' | median)
  j_t=$(printf '%s' "$j_rows" | awk '{print $1}' | median); j_m=$(printf '%s' "$j_rows" | awk '{print $2}' | median)
  figure "$s_t" "sluice NDJSON time"; figure "$j_t" "jq NDJSON time"
  echo "| stdin → lua → stdout, $((bytes / 1048576)) MiB NDJSON | $(echo "$bytes $s_t" | awk '{printf "%.0f", $1/1048576/$2}') MiB/s, peak RSS $((s_m / 1024)) MiB | jq -c: $(echo "$bytes $j_t" | awk '{printf "%.0f", $1/1048576/$2}') MiB/s, peak RSS $((j_m / 1024)) MiB | $(echo "$j_t $s_t" | awk '{printf "%.1f", $1/$2}')× |"
}

bench_startup() {
  cat > "$WORK/trivial.yaml" <<YAML
input:
  generate: {count: 1, interval: 0, mapping: 'return "x"'}
output:
  drop: {}
YAML
  st=$(hyperfine -N -w 5 -r 50 --export-json "$WORK/h.json" "$BIN run $WORK/trivial.yaml" "jq -n 1" >/dev/null 2>&1 &&
       jq -r '.results | map(.median * 1000) | "\(.[0]) \(.[1])"' "$WORK/h.json") || fail "hyperfine failed"
  s_ms=$(echo "$st" | awk '{printf "%.1f", $1}'); j_ms=$(echo "$st" | awk '{printf "%.1f", $2}')
  figure "$s_ms" "startup"; figure "$j_ms" "jq startup"
  # Idle RSS, once the pipeline provably runs: stdin → file after one line
  # came out, and http_server → drop once /ping answers; then 1 s idle.
  cat > "$WORK/idle.yaml" <<YAML
input:
  stdin: {}
output:
  file: {path: $WORK/idle.out}
YAML
  rm -f "$WORK/idle.in" "$WORK/idle.out"; mkfifo "$WORK/idle.in"
  "$BIN" run --log-level warn "$WORK/idle.yaml" < "$WORK/idle.in" & pid=$!
  exec 3> "$WORK/idle.in"
  echo x >&3
  for _ in $(seq 200); do [ -s "$WORK/idle.out" ] && break; sleep 0.05; done
  [ -s "$WORK/idle.out" ] || fail "stdin → file did not run"
  sleep 1
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  exec 3>&-
  wait $pid || fail "stdin → file failed"
  cat > "$WORK/idle_http.yaml" <<YAML
http: {address: 127.0.0.1:${PORT:-18097}}
input:
  http_server: {path: /in}
output:
  drop: {}
YAML
  "$BIN" run --log-level warn "$WORK/idle_http.yaml" & pid=$!
  wait_http "http://127.0.0.1:${PORT:-18097}/ping" $pid
  sleep 1
  rss_http=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill $pid; wait $pid || fail "http_server → drop did not stop cleanly"
  figure "$rss" "idle RSS"; figure "$rss_http" "idle RSS with http_server"
  echo "| startup of \`sluice run\` (generate 1 → drop, to exit) | $s_ms ms | \`jq -n 1\`: $j_ms ms | $(echo "$s_ms $j_ms" | awk '{printf "%.2f", $1/$2}') |"
  echo "| idle RSS of \`sluice run\` (stdin → file) | $((rss / 1024)) MiB ($rss KiB) | | |"
  echo "| idle RSS of \`sluice run\` (http_server → drop) | $((rss_http / 1024)) MiB ($rss_http KiB) | | |"
}

echo "| benchmark | sluice | peer | ratio |"
echo "| --- | --- | --- | --- |"
case $what in
  lua) bench_lua ;;
  ndjson) bench_ndjson ;;
  startup) bench_startup ;;
  all) bench_lua; bench_ndjson; bench_startup ;;
esac
