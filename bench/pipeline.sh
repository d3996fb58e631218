#!/bin/bash
# Memory under a pipelined flood: one connection sends a long-poll GET that
# waits 3 s, then N `GET /ping` pipelined behind it (spec/tools/pipeline_flood.py,
# reading the answers as they come). Prints sluice's RSS before, its peak
# while the flood ran, and the time. Usage: bench/pipeline.sh [N] (400000)
set -eu
cd "$(dirname "$0")/.."
N=${1:-400000}
BIN=${SLUICE_BIN:-build/sluice}
PORT=${PORT:-18097}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
cat > "$WORK/c.yaml" <<YAML
http: {address: 127.0.0.1:$PORT}
input: {http_server: {path: /in}}
output: {http_server: {path: /out, timeout: 3s}}
YAML
"$BIN" run --log-level warn "$WORK/c.yaml" & pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/ping" && break; sleep 0.1; done
before=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
start=$(date +%s.%N)
out=$(python3 spec/tools/pipeline_flood.py $PORT /out "$N" --pid $pid --deadline 600)
secs=$(echo "$(date +%s.%N) - $start" | bc)
answers=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["answers"])')
peak=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_rss_kib"])')
kill $pid
wait $pid
[ "$answers" -eq $((N + 1)) ] || { echo "pipeline.sh: $answers answers of $((N + 1)): $out" >&2; exit 1; }
printf '| %d pipelined GETs behind a 3 s long-poll | RSS %d KiB before, %d KiB peak | %.1f s (3 s of it the wait) |\n' \
  "$N" "$before" "$peak" "$secs"
