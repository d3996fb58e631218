#!/bin/bash
# Append rate of the embedded store beside Redis Streams, same machine, same run:
#   in-process: generate (batches of 1,024) → stream output, 100-byte events
#   over HTTP:  wrk POSTing batches of 100 events to /stream/{name}/publish
#   Redis:      redis-benchmark XADD of 100-byte values, pipelined (-P 100)
# each with fsync interval/always (Redis: AOF everysec/always).
# Usage: bench/store.sh        (RUNS=3 N=2000000 DURATION=5s by default)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
RUNS=${RUNS:-3}
N=${N:-2000000}
DURATION=${DURATION:-5s}
PORT=18191
RPORT=18192
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
VALUE=$(printf 'x%.0s' $(seq 1 100))


inproc() { # $1 = fsync policy
  cat > "$WORK/gen.yaml" <<YAML
store: {data_dir: $WORK/data-gen, fsync: $1, api: false}
input:
  generate: {count: $N, interval: 0, batch_size: 1024, mapping: 'return "$VALUE"'}
max_in_flight: 64
output:
  stream: {name: bench}
YAML
  for _ in $(seq "$RUNS"); do
    rm -rf "$WORK/data-gen"
    s=$(date +%s.%N)
    "$BIN" run --log-level warn "$WORK/gen.yaml" || fail "generate → stream failed"
    e=$(date +%s.%N)
    echo "$N $s $e" | awk '{printf "%d\n", $1 / ($3 - $2)}'
  done | median
}

http() { # $1 = fsync policy
  rm -rf "$WORK/data-http"
  cat > "$WORK/http.yaml" <<YAML
http: {address: 127.0.0.1:$PORT}
store: {data_dir: $WORK/data-http}
input: {generate: {interval: 1h, mapping: 'return 1'}}
output: {drop: {}}
YAML
  "$BIN" run --log-level warn "$WORK/http.yaml" & pid=$!
  wait_http "http://127.0.0.1:$PORT/ping" $pid
  curl -sf -X POST "127.0.0.1:$PORT/stream/bench" -d "{\"fsync\":\"$1\"}" > /dev/null || fail "cannot create the stream"
  body=$(python3 -c "import json;print(json.dumps({'events':[{'data':'$VALUE'[:98]} for _ in range(100)]}))")
  cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$body]]
wrk.headers["Content-Type"] = "application/json"
LUA
  for _ in $(seq "$RUNS"); do
    wrk -t2 -c32 -d"$DURATION" -s "$WORK/post.lua" "http://127.0.0.1:$PORT/stream/bench/publish" > "$WORK/wrk.out"
    wrk_check "$WORK/wrk.out"
    awk '/Requests\/sec/ {printf "%d\n", $2 * 100}' "$WORK/wrk.out"
  done | median
  kill $pid; wait $pid 2>/dev/null || true
}

redis() { # $1 = appendfsync
  rm -rf "$WORK/redis"; mkdir -p "$WORK/redis"
  redis-server --port $RPORT --dir "$WORK/redis" --appendonly yes --appendfsync "$1" --save '' --daemonize no \
    --logfile "$WORK/redis/log" & rpid=$!
  for _ in $(seq 100); do redis-cli -p $RPORT ping > /dev/null 2>&1 && break; sleep 0.05; done
  for _ in $(seq "$RUNS"); do
    redis-cli -p $RPORT del bench > /dev/null
    redis-benchmark -p $RPORT -n "$N" -P 100 -q XADD bench '*' v "$VALUE" 2>/dev/null |
      tr '\r' '\n' | awk '/XADD/ && /requests per second/ {for (i = 1; i <= NF; i++) if ($i == "requests") {printf "%d\n", $(i-1)}}' | tail -1
  done | median
  kill $rpid; wait $rpid 2>/dev/null || true
}

# Consume rate from disk: a `stream` input with until_end reads everything
# that inproc() appended, through the pipeline to `drop` (warm: the segment
# files in the page cache; cold: dropped from it with dd's nocache first).
consume() { # $1 = warm | cold
  cat > "$WORK/rd.yaml" <<YAML
store: {data_dir: $WORK/data-gen, api: false}
input: {stream: {name: bench, group: rd, batch_size: 1024, until_end: true}}
max_in_flight: 64
output: {drop: {}}
YAML
  for _ in $(seq "$RUNS"); do
    rm -f "$WORK/data-gen/bench/offsets.json"
    if [ "$1" = cold ]; then
      for f in "$WORK"/data-gen/bench/0/*; do dd if="$f" iflag=nocache count=0 status=none; done
    fi
    s=$(date +%s.%N)
    "$BIN" run --log-level warn "$WORK/rd.yaml" || fail "stream → drop failed"
    e=$(date +%s.%N)
    echo "$N $s $e" | awk '{printf "%d\n", $1 / ($3 - $2)}'
  done | median
}

echo "| fsync | sluice generate → stream (in-process) | sluice HTTP batches of 100 | Redis XADD -P 100 | HTTP / Redis |"
echo "| --- | --- | --- | --- | --- |"
for pol in interval:everysec always:always; do
  s=${pol%%:*}; r=${pol##*:}
  a=$(inproc "$s"); b=$(http "$s"); c=$(redis "$r")
  figure "$a" "generate → stream ($s)"; figure "$b" "HTTP publish ($s)"; figure "$c" "Redis XADD ($r)"
  echo "| $s (Redis AOF $r) | $a events/s | $b events/s | $c events/s | $(echo "$b $c" | awk '{printf "%.2f", $1/$2}') |"
done

echo
echo "| read from disk | stream input (until_end) → drop |"
echo "| --- | --- |"
inproc interval > /dev/null
warm=$(consume warm); figure "$warm" "stream input, warm"
cold=$(consume cold); figure "$cold" "stream input, cold"
echo "| warm (page cache) | $warm events/s |"
echo "| cold (dropped from the page cache) | $cold events/s |"
