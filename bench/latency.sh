#!/bin/bash
# Broadcast latency: generate at 1,000 msg/s → http_server output (SSE) →
# N clients (bench/latency.js); p50/p99 of send-to-receive time.
# Usage: bench/latency.sh [N...]   (default: 100 1000)
set -eu
cd "$(dirname "$0")/.."
BIN=${SLUICE_BIN:-build/sluice}
PORT=18091
ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
cat > "$WORK/c.yaml" <<YAML
http: {address: 127.0.0.1:$PORT, max_connections: 100000}
input: {generate: {interval: 1ms, mapping: 'return {t = now()}'}}
output: {http_server: {path: "", sse_path: /sse, replay_bytes: 0}}
YAML
echo "| clients | events received | p50 | p99 | max |"
echo "| --- | --- | --- | --- | --- |"
for n in ${@:-100 1000}; do
  "$BIN" run --log-level warn "$WORK/c.yaml" & pid=$!
  sleep 0.5
  r=$(node bench/latency.js "http://127.0.0.1:$PORT/sse" "$n" 5)
  kill $pid; wait $pid 2>/dev/null || true
  echo "$r" | node -e 'const r=JSON.parse(require("fs").readFileSync(0));console.log(`| '"$n"' | ${r.events} | ${r.p50} ms | ${r.p99} ms | ${r.max} ms |`)'
done
