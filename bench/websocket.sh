#!/bin/bash
# The websocket client input and output against an npm `ws` server
# (bench/ws_peer.js), beside Benthos v4.27.0 built from source (its
# websocket input and output), same server, same run, N messages of each size:
#   input:  the server sends N binary messages as fast as its socket takes
#           them; a client (websocket input → drop) is timed from its start
#           until its /metrics count N received (polled every 10 ms)
#   output: generate N messages (batches of 64) → websocket output; the server
#           times from the connection until it has N messages
# WebSocket has no application-level acknowledgement: both clients count a
# message delivered once written to the socket (and the server counts what
# arrived). Usage: bench/websocket.sh   (N=1000000 SIZES="100 1024" RUNS=3)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-1000000}
SIZES=${SIZES:-100 1024}
RUNS=${RUNS:-3}
WPORT=${WPORT:-14590}
HPORT=${HPORT:-18590}
BENTHOS=${BENTHOS:-$HOME/.cache/sluice-bench/benthos-ws/benthos}
[ -x "$BENTHOS" ] || benthos_build "$(dirname "$BENTHOS")" pure io prometheus   # prometheus: its /metrics
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM

peer() {   # mode args...: starts bench/ws_peer.js, waits until it listens; sets PEER
  node bench/ws_peer.js "$WPORT" "$@" > "$WORK/peer.out" 2>&1 & PEER=$!
  for _ in $(seq 200); do grep -q listening "$WORK/peer.out" 2>/dev/null && return 0; sleep 0.05; done
  fail "ws_peer did not start: $(cat "$WORK/peer.out")"
}

# input: who (sluice|benthos) → messages/s
input_rate() {
  peer feed "$N" "$1"
  if [ "$2" = sluice ]; then
    printf 'http: {address: 127.0.0.1:%s}\nlogger: {level: error}\ninput: {websocket: {url: ws://127.0.0.1:%s/}}\noutput: {drop: {}}\n' "$HPORT" "$WPORT" > "$WORK/c.yaml"
    t0=$(now); "$BIN" run "$WORK/c.yaml" > "$WORK/run.out" 2>&1 & P=$!
  else
    printf 'http: {address: 127.0.0.1:%s}\nmetrics: {prometheus: {}}\nlogger: {level: none}\ninput: {websocket: {url: ws://127.0.0.1:%s/}}\noutput: {drop: {}}\n' "$HPORT" "$WPORT" > "$WORK/c.yaml"
    t0=$(now); "$BENTHOS" -c "$WORK/c.yaml" > "$WORK/run.out" 2>&1 & P=$!
  fi
  wait_received "$P" "$HPORT" "$N" 12000 0.01 "$2"
  t1=$(now)
  [ "${got:-0}" -ge "$N" ] || fail "$2 received ${got:-0} of $N"
  kill "$P" "$PEER" 2>/dev/null; wait "$P" "$PEER" 2>/dev/null || true
  rate_between "$t0" "$t1"
}

# output: size who → "messages/s CPU-µs-per-message" (the node server bounds
# the rate at 1 KiB: the CPU each client spends is the figure that compares them)
output_rate() {
  peer count "$N"
  if [ "$2" = sluice ]; then
    printf 'logger: {level: error}\ninput: {generate: {count: %s, interval: 0, batch_size: 64, mapping: %s}}\noutput: {websocket: {url: ws://127.0.0.1:%s/}}\n' \
      "$N" "'return string.rep(\"x\", $1)'" "$WPORT" > "$WORK/c.yaml"
    /usr/bin/time -f "%U %S" -o "$WORK/cpu" "$BIN" run "$WORK/c.yaml" > "$WORK/run.out" 2>&1 & P=$!
  else
    printf 'logger: {level: none}\ninput: {generate: {count: %s, interval: "", batch_size: 64, mapping: %s}}\noutput: {websocket: {url: ws://127.0.0.1:%s/}}\n' \
      "$N" "'root = \"$(head -c "$1" /dev/zero | tr '\0' x)\"'" "$WPORT" > "$WORK/c.yaml"
    /usr/bin/time -f "%U %S" -o "$WORK/cpu" "$BENTHOS" -c "$WORK/c.yaml" > "$WORK/run.out" 2>&1 & P=$!
  fi
  wait "$PEER" || fail "the server did not count $N from $2: $(tail -3 "$WORK/run.out")"
  ms=$(tail -1 "$WORK/peer.out")
  pkill -P "$P" 2>/dev/null; wait "$P" 2>/dev/null || true
  echo "$N $ms $(tail -1 "$WORK/cpu")" | awk '{printf "%d %.2f\n", $1 / ($2 / 1000), ($3 + $4) * 1e6 / $1}'
}

echo "| message size | sluice websocket input → drop | Benthos websocket input → drop | ratio | sluice generate → websocket output | Benthos generate → websocket output | ratio | output CPU µs/msg sluice / Benthos |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for size in $SIZES; do
  si=(); bi=(); so=(); bo=(); sc=(); bc=()
  for _ in $(seq "$RUNS"); do
    si+=("$(input_rate "$size" sluice)"); bi+=("$(input_rate "$size" benthos)")
    read -r r u <<< "$(output_rate "$size" sluice)"; so+=("$r"); sc+=("$u")
    read -r r u <<< "$(output_rate "$size" benthos)"; bo+=("$r"); bc+=("$u")
  done
  a=$(printf '%s\n' "${si[@]}" | median); b=$(printf '%s\n' "${bi[@]}" | median)
  c=$(printf '%s\n' "${so[@]}" | median); d=$(printf '%s\n' "${bo[@]}" | median)
  e=$(printf '%s\n' "${sc[@]}" | median); f=$(printf '%s\n' "${bc[@]}" | median)
  for v in "$a" "$b" "$c" "$d"; do figure "$v" "a rate of size $size"; done
  echo "$size B $a $b $c $d $e $f" | awk '{printf "| %s %s | %d msg/s | %d msg/s | %.2f | %d msg/s | %d msg/s | %.2f | %.2f / %.2f |\n", $1, $2, $3, $4, $3/$4, $5, $6, $5/$6, $7, $8}'
done
