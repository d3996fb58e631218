#!/bin/bash
# End-to-end latency of Tyk's demo at RATE requests/s (bench/demo_latency.js):
# POST → in → Kafka (or the embedded store) → Worker → out → SSE, the seed's
# path. Usage: bench/demo_latency.sh [kafka|embedded]   (RATE=1000 SECS=10 USERS=10 ROUNDS=1)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
MODE=${1:-kafka}
RATE=${RATE:-1000}; SECS=${SECS:-10}; USERS=${USERS:-10}
HPORT=${HPORT:-18493}; KPORT=${KPORT:-19493}
WORK=$(mktemp -d)
trap 'scripts/kafka.sh stop "$WORK/kafka" >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
if [ "$MODE" = kafka ]; then
  mkdir -p "$WORK/kafka"
  scripts/kafka.sh start "$WORK/kafka" "$KPORT" >&2
  export KAFKA_ADDRESSES=127.0.0.1:$KPORT
  conf=examples/tyk-streams-demo/kafka.yaml
  # The topics exist before the consumers subscribe (librdkafka otherwise
  # finds them only at its next metadata refresh), and groups get time to join.
  for t in jobs completed; do echo '{"user_id":"warmup"}' | kcat -P -b "$KAFKA_ADDRESSES" -t "$t"; done
  warm=10000
else
  export SLUICE_DATA_DIR=$WORK/data
  # The quickstart knows alice, bob and admin by their API keys: each bench user gets one too.
  awk -v n="$USERS" '{ print } /^ +admin-key: admin$/ { for (u = 0; u < n; u++) printf "        u%d-key: u%d\n", u, u }' \
    examples/quickstart.yaml > "$WORK/quickstart.yaml"
  conf=$WORK/quickstart.yaml
fi
HTTP_ADDRESS=127.0.0.1:$HPORT "$BIN" run --log-level warn "$conf" & pid=$!
wait_http "http://127.0.0.1:$HPORT/ping" $pid
# ROUNDS > 1 runs the client again against the same sluice and broker: a
# transient that only the first round shows belongs to start-up.
for round in $(seq "${ROUNDS:-1}"); do
r=$(node bench/demo_latency.js "http://127.0.0.1:$HPORT" "$RATE" "$SECS" "$USERS" "${warm:-2000}")
for k in answered received; do
  figure "$(echo "$r" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0))[process.argv[1]])' "$k")" "requests $k"
done
echo "$r" | node -e 'const r = JSON.parse(require("fs").readFileSync(0)); console.log(`| '"$MODE"' | '"$RATE"'/s × '"$SECS"' s, '"$USERS"' users | ${r.sent} | ${r.answered} | ${r.received} | ${r.p50} ms | ${r.p99} ms | ${r.max} ms | ${r.steady.p50} / ${r.steady.p99} / ${r.steady.max} ms |`)'
done
kill $pid; wait $pid 2>/dev/null || true
