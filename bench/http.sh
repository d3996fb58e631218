#!/bin/sh
# HTTP benchmark of issue 3: wrk (keep-alive, 100 connections, small JSON
# POST) against sluice `http_server → drop`, `http_server → lua → sync_response`
# and nginx returning a static 200, one after the other on loopback in the
# same run. nginx runs one worker, as sluice runs one. Prints Markdown rows.
# Env: DURATION (default 10s), RUNS (default 3).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
PORT=18080

cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"user":"ada","event":"click","n":42}'
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
  server {
    listen 127.0.0.1:$PORT;
    location / { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
NGINX

cat > "$WORK/drop.yaml" <<YAML
http: {address: 127.0.0.1:$PORT}
input: {http_server: {path: /}}
output: {drop: {}}
YAML

cat > "$WORK/lua.yaml" <<YAML
http: {address: 127.0.0.1:$PORT}
input: {http_server: {path: /}}
pipeline:
  processors:
    - lua: |
        this.id = uuid_v4()
        this.seen = true
output: {sync_response: {}}
YAML


# wrk → "req/s p50_ms p99_ms" medians over RUNS.
measure() {
  for _ in $(seq "$RUNS"); do
    wrk -t2 -c100 -d"$DURATION" --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT/" > "$WORK/wrk.out"
    wrk_check "$WORK/wrk.out"
    rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.out")
    p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
    echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
  done > "$WORK/runs"
  echo "$(awk '{print $1}' "$WORK/runs" | median) $(awk '{print $2}' "$WORK/runs" | median) $(awk '{print $3}' "$WORK/runs" | median)"
}
to_ms() { echo "$1" | awk '/us$/ {sub("us",""); print $1/1000; next} /ms$/ {sub("ms",""); print $1; next} /s$/ {sub("s",""); print $1*1000}'; }

run_server() { # $1 = name, rest = command
  name=$1; shift
  "$@" > "$WORK/$name.log" 2>&1 &
  echo $! > "$WORK/$name.pid"
  wait_http "http://127.0.0.1:$PORT/" "$(cat "$WORK/$name.pid")"
  measure
  kill "$(cat "$WORK/$name.pid")"; wait "$(cat "$WORK/$name.pid")" 2>/dev/null || true
  rm -f "$WORK/$name.pid"
}

# (a run that failed prints nothing: the empty values fail below)
set -- $(run_server nginx nginx -c "$WORK/nginx.conf") "" "" ""; n_rps=$1 n_p50=$2 n_p99=$3
set -- $(run_server drop "$BIN" run --log-level warn "$WORK/drop.yaml") "" "" ""; d_rps=$1 d_p50=$2 d_p99=$3
set -- $(run_server lua "$BIN" run --log-level warn "$WORK/lua.yaml") "" "" ""; l_rps=$1 l_p50=$2 l_p99=$3
for v in "$n_rps" "$d_rps" "$l_rps"; do figure "$v" "requests/s"; done

echo "| benchmark | req/s | p50 | p99 | ratio to nginx |"
echo "| --- | --- | --- | --- | --- |"
echo "| nginx 1 worker, static 200 | $n_rps | $n_p50 ms | $n_p99 ms | 1 |"
echo "| sluice http_server → drop (answer after ack) | $d_rps | $d_p50 ms | $d_p99 ms | $(echo "$d_rps $n_rps" | awk '{printf "%.2f", $1/$2}') |"
echo "| sluice http_server → lua (decode, +uuid, +bool, encode) → sync_response | $l_rps | $l_p50 ms | $l_p99 ms | $(echo "$l_rps $n_rps" | awk '{printf "%.2f", $1/$2}') |"
