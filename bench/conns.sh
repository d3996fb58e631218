#!/bin/bash
# Memory per idle connection: sluice's RSS with N idle WebSocket clients and
# then N idle SSE clients (npm ws / node http from bench/conns.js), each
# measured against the RSS before they connected. Usage: bench/conns.sh [N]
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-10000}
BIN=${SLUICE_BIN:-build/sluice}
PORT=18090
ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
cat > "$WORK/c.yaml" <<YAML
http: {address: 127.0.0.1:$PORT, max_connections: 100000, idle_timeout: 1h}
input: {generate: {interval: 1h, mapping: 'return "x"'}}
output: {http_server: {path: "", ws_path: /ws, sse_path: /sse, heartbeat: 1h}}
YAML
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
for kind in ws sse; do
  # A fresh server per kind: freed memory is not returned, so a second
  # measurement in the same process would reuse the first one's.
  "$BIN" run --log-level warn "$WORK/c.yaml" & pid=$!
  wait_http "http://127.0.0.1:$PORT/ping" $pid
  before=$(rss)
  url=$([ $kind = ws ] && echo "ws://127.0.0.1:$PORT/ws" || echo "http://127.0.0.1:$PORT/sse")
  mkfifo "$WORK/in-$kind"
  node bench/conns.js $kind "$url" "$N" < "$WORK/in-$kind" > "$WORK/out-$kind" 2> "$WORK/err-$kind" & cpid=$!
  exec 3> "$WORK/in-$kind"
  # Up to 60 s for every client to connect; a client that exits (it could not
  # load ws, or a connection failed) or never gets there fails the run.
  for _ in $(seq 600); do
    grep -q open "$WORK/out-$kind" 2>/dev/null && break
    kill -0 $cpid 2>/dev/null || break
    sleep 0.1
  done
  grep -q "open $N" "$WORK/out-$kind" || fail "$kind: $N clients did not connect: $(cat "$WORK/err-$kind" "$WORK/out-$kind")"
  sleep 1
  after=$(rss)
  figure $((after - before)) "RSS growth with $N idle $kind connections"
  echo "| $N idle $kind connections | RSS +$(( (after - before) / 1024 )) MiB | $(( (after - before) * 1024 / N )) bytes per connection |"
  exec 3>&-
  wait $cpid || fail "$kind: the clients failed: $(cat "$WORK/err-$kind")"
  kill $pid; wait $pid 2>/dev/null || true
done
