#!/bin/sh
# Webhooks out (issue 15): generate → http_client output POSTing each
# message to a local nginx (1 worker, static 200), beside wrk POSTing the
# same body to the same nginx as the ceiling, in the same run. Also the
# same with batches of 100 as one NDJSON request. Prints Markdown rows.
# Env: N (messages, default 200000), DURATION (wrk, default 10s), RUNS (3),
# CONNS (wrk connections = the output's max_in_flight, default 64).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-200000}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
PORT=${PORT:-$((18100 + $$ % 800))}   # another bench may hold a fixed port
BODY='{"user":"ada","event":"click","n":42}'

cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA

cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx.pid.run;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$PORT;
    location / { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
NGINX

# $1: batch_size, $2: batch_format
config() {
  cat > "$WORK/out.yaml" <<YAML
input:
  generate: {count: $N, interval: 0, batch_size: $1, mapping: 'return [[$BODY]]'}
output:
  http_client:
    url: http://127.0.0.1:$PORT/hook
    headers: {Content-Type: application/json}
    max_in_flight: $CONNS
    batch_format: $2
YAML
}


# sluice's messages/s for the config, median of RUNS.
sluice_rate() {
  for _ in $(seq "$RUNS"); do
    s=$(date +%s.%N)
    "$BIN" run "$WORK/out.yaml" 2> "$WORK/sluice.err" || fail "sluice: $(tail -3 "$WORK/sluice.err")"
    e=$(date +%s.%N)
    echo "$N $s $e" | awk '{printf "%.0f\n", $1 / ($3 - $2)}'
  done | median
}

nginx -c "$WORK/nginx.conf" -p "$WORK" > "$WORK/nginx.log" 2>&1 &
echo $! > "$WORK/nginx.pid"
wait_http "http://127.0.0.1:$PORT/" "$(cat "$WORK/nginx.pid")"

for _ in $(seq "$RUNS"); do
  wrk -t1 -c"$CONNS" -d"$DURATION" -s "$WORK/post.lua" "http://127.0.0.1:$PORT/hook" > "$WORK/wrk.out"
  wrk_check "$WORK/wrk.out"
  awk '/^Requests\/sec/ {printf "%.0f\n", $2}' "$WORK/wrk.out"
done | median > "$WORK/wrk.rate"
WRK=$(cat "$WORK/wrk.rate")
figure "$WRK" "wrk"

config 1 individual
ONE=$(sluice_rate)
figure "$ONE" "http_client per message"
config 100 ndjson
BATCH=$(sluice_rate)
figure "$BATCH" "http_client NDJSON batches"

echo "| benchmark | sluice | ceiling | ratio |"
echo "| --- | --- | --- | --- |"
echo "| generate → http_client (POST per message, max_in_flight $CONNS) → nginx | $ONE msg/s = req/s | wrk -t1 -c$CONNS POST to the same nginx: $WRK req/s | $(echo "$ONE $WRK" | awk '{printf "%.2f", $1/$2}') |"
echo "| generate (batches of 100) → http_client (NDJSON, one request per batch) → nginx | $BATCH msg/s ($(echo "$BATCH" | awk '{printf "%.0f", $1/100}') req/s) | | $(echo "$BATCH $WRK" | awk '{printf "%.1f", $1/$2}')× the ceiling's msg/s |"
