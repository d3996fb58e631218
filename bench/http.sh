#!/bin/sh
# HTTP benchmark of issues 3 and 18: wrk (keep-alive, 100 connections, small
# JSON POST) against sluice `http_server → drop` and `http_server → lua →
# sync_response` at http.workers 1 and 2, and nginx returning a static 200
# with one worker and with `worker_processes auto`, on loopback in the same
# run, interleaved (one wrk per server per round). Prints Markdown rows:
# medians over the rounds.
# Env: DURATION (default 10s), RUNS (default 3), PORT (default 18080).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
PORT=${PORT:-18080}

wrk_post "$WORK/post.lua"

for procs in 1 auto; do
cat > "$WORK/nginx-$procs.conf" <<NGINX
worker_processes $procs;
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
done

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


# CPU clock ticks (user + system) of process $1 and its children (nginx's workers).
cpu_ticks() {
  for p in "$1" $(pgrep -P "$1" || true); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done |
    awk '{t += $1} END {print t + 0}'
}

# One wrk run against process $1 → "req/s p50_ms p99_ms cpu_us_per_request". On a
# loaded machine more threads get more of the CPU: CPU per request is the
# figure that depends least on the other processes.
measure() {
  t0=$(cpu_ticks "$1")
  wrk -t2 -c100 -d"$DURATION" --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT/" > "$WORK/wrk.out"
  t1=$(cpu_ticks "$1")
  wrk_check "$WORK/wrk.out"
  rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.out")
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") $(echo "$t0 $t1 $reqs $(getconf CLK_TCK)" | awk '{printf "%.1f", ($2 - $1) * 1e6 / $4 / $3}')"
}
to_ms() { echo "$1" | awk '/us$/ {sub("us",""); print $1/1000; next} /ms$/ {sub("ms",""); print $1; next} /s$/ {sub("s",""); print $1*1000}'; }

run_server() { # $1 = name, rest = command; appends a run to $WORK/$name.runs
  name=$1; shift
  "$@" > "$WORK/$name.log" 2>&1 &
  echo $! > "$WORK/$name.pid"
  wait_http "http://127.0.0.1:$PORT/" "$(cat "$WORK/$name.pid")"
  measure "$(cat "$WORK/$name.pid")" >> "$WORK/$name.runs"
  kill "$(cat "$WORK/$name.pid")"; wait "$(cat "$WORK/$name.pid")" 2>/dev/null || true
  rm -f "$WORK/$name.pid"
}

for _ in $(seq "$RUNS"); do
  run_server nginx1 nginx -c "$WORK/nginx-1.conf"
  run_server nginxN nginx -c "$WORK/nginx-auto.conf"
  for w in 1 2; do
    run_server "drop$w" env SLUICE_HTTP_WORKERS=$w "$BIN" run --log-level warn "$WORK/drop.yaml"
    run_server "lua$w" env SLUICE_HTTP_WORKERS=$w "$BIN" run --log-level warn "$WORK/lua.yaml"
  done
done

# "req/s p50 p99 cpu" medians of a server's runs
medians() {
  f="$WORK/$1.runs"
  echo "$(awk '{print $1}' "$f" | median) $(awk '{print $2}' "$f" | median) $(awk '{print $3}' "$f" | median)" \
    "$(awk '{print $4}' "$f" | median)"
}
NGX=$(medians nginxN | awk '{print $1}')
for name in nginx1 nginxN drop1 drop2 lua1 lua2; do figure "$(medians $name | awk '{print $1}')" "requests/s"; done

row() { # $1 = label, $2 = server name
  set -- "$1" $(medians "$2")
  echo "| $1 | $2 | $3 ms | $4 ms | $5 µs | $(echo "$2 $NGX" | awk '{printf "%.2f", $1/$2}') |"
}
echo "| benchmark | req/s | p50 | p99 | CPU per request | ratio to nginx auto |"
echo "| --- | --- | --- | --- | --- | --- |"
row "nginx worker_processes auto ($(nproc) cores), static 200" nginxN
row "nginx 1 worker, static 200" nginx1
row "sluice http_server → drop (answer after ack), http.workers 1" drop1
row "sluice http_server → drop, http.workers 2" drop2
row "sluice http_server → lua (decode, +uuid, +bool, encode) → sync_response, http.workers 1" lua1
row "sluice http_server → lua → sync_response, http.workers 2" lua2
