#!/bin/bash
# NATS throughput beside the NATS CLI's own benchmark (`nats bench`, Go,
# nats.go), same server, same run, same delivery guarantee:
#   core:      sluice generate → nats output   vs  nats bench --pub 1        (no acks)
#              sluice nats input → drop        vs  nats bench --sub 1        (no acks),
#              both fed by the same `nats bench --pub 1`, timed from its start until the
#              consumer has N messages (a consumer that falls behind loses some: core
#              NATS drops for slow consumers, and the row says how many arrived)
#   JetStream: sluice generate → nats_jetstream vs nats bench --js --pub 1 --pubbatch 1024
#              (every message acknowledged by the stream's PubAck, 1024 in flight)
#              sluice nats_jetstream → drop     vs nats bench --js --sub 1 --push
#              --consumerbatch 1024 (a durable push consumer, every message acked
#              explicitly, 1024 unacknowledged at most), both reading the stream
#              nats bench's publisher filled
# Wall time from process start to exit (or to N counted), so both pay for
# connecting. nats-server is Debian's (-js, store in a temp dir); the nats CLI
# comes from the Go module proxy (go install, once).
# Usage: bench/nats.sh   (N=1000000 SIZES="100 1024" RUNS=3 by default)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-1000000}
SIZES=${SIZES:-100 1024}
RUNS=${RUNS:-3}
NPORT=${NPORT:-14322}
HPORT=${HPORT:-18394}
NATSCLI_VERSION=${NATSCLI_VERSION:-v0.1.5}
NATS=${NATS_CLI:-$(command -v nats || echo "$HOME/go/bin/nats")}
if [ ! -x "$NATS" ]; then
  command -v go >/dev/null || fail "the nats CLI is missing and there is no go to install it"
  go install "github.com/nats-io/natscli/nats@$NATSCLI_VERSION" >&2
  NATS=$(go env GOPATH)/bin/nats
fi
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
nats-server -js -sd "$WORK/js" -a 127.0.0.1 -p "$NPORT" -l "$WORK/server.log" & SRV=$!
U=nats://127.0.0.1:$NPORT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$NPORT) 2>/dev/null && break; sleep 0.05; done
BENCH() { "$NATS" -s "$U" bench --no-progress "$@"; }

rate() { echo "$1 $2 $3" | awk '{printf "%d\n", $1 / ($3 - $2)}'; }   # count start end
timed() { "$@" > "$WORK/cmd.out" 2>&1 || fail "$* failed: $(tail -5 "$WORK/cmd.out")"; }

# Until sluice's /metrics counts $1 messages in (60 s at most); prints the count.
count_in() {
  local got=0 end=$(($(date +%s) + 60)) last=-1 still=0
  while [ "$(date +%s)" -lt $end ]; do
    got=$(curl -s "127.0.0.1:$HPORT/metrics" 2>/dev/null | awk '/^input_received/ {print $2}')
    [ "${got:-0}" -ge "$1" ] && break
    # core NATS: what was dropped never comes; stop once the count stood still for 2 s
    if [ "${got:-0}" = "$last" ] && [ "${got:-0}" -gt 0 ]; then still=$((still + 1)); else still=0; fi
    [ $still -ge 200 ] && break
    last=${got:-0}
    sleep 0.01
  done
  echo "${got:-0}"
}

produce_sluice() { # $1 size, $2 output kind
  # JetStream: the subject of the stream nats bench made (benchstream)
  local extra="" subject=bench.core
  [ "$2" = nats_jetstream ] && extra=", max_in_flight: 1024" subject=bench.peerjs
  cat > "$WORK/p.yaml" <<YAML
input: {generate: {count: $N, interval: 0, batch_size: 1024, mapping: 'return string.rep("x", $1)'}}
max_in_flight: 64
output: {$2: {urls: [$U], subject: $subject$extra}}
YAML
  local s e; s=$(now); timed "$BIN" run --log-level warn "$WORK/p.yaml"; e=$(now)
  rate "$N" "$s" "$e"
}

produce_peer() { # $1 size, $2 kind
  local s e; s=$(now)
  if [ "$2" = nats_jetstream ]; then
    timed BENCH bench.peerjs --js --purge --maxbytes 4GB --pub 1 --msgs "$N" --size "$1" --pubbatch 1024
  else timed BENCH bench.core --pub 1 --msgs "$N" --size "$1"; fi
  e=$(now); rate "$N" "$s" "$e"
}

# sluice's input → drop; prints "rate count".
consume_sluice() { # $1 size, $2 kind
  if [ "$2" = nats_jetstream ]; then
    in="nats_jetstream: {urls: [$U], subject: bench.peerjs, durable: sl$RANDOM$RANDOM, max_ack_pending: 1024, batch_count: 256}"
  else
    in="nats: {urls: [$U], subject: bench.core, batch_count: 256}"
  fi
  cat > "$WORK/c.yaml" <<YAML
http: {address: 127.0.0.1:$HPORT}
input: {$in}
max_in_flight: 64
output: {drop: {}}
YAML
  local s e got pid
  if [ "$2" = nats_jetstream ]; then
    s=$(now)
    "$BIN" run --log-level warn "$WORK/c.yaml" & pid=$!
  else
    "$BIN" run --log-level warn "$WORK/c.yaml" & pid=$!
    wait_http "127.0.0.1:$HPORT/ready" $pid
    for _ in $(seq 200); do curl -sf "127.0.0.1:$HPORT/ready" >/dev/null && break; sleep 0.05; done
    s=$(now)
    BENCH bench.core --pub 1 --msgs "$N" --size "$1" > /dev/null 2>&1 &
  fi
  got=$(count_in "$N"); e=$(now)
  kill $pid; wait $pid 2>/dev/null || true
  wait 2>/dev/null || true
  echo "$(rate "$got" "$s" "$e") $got"
}

consume_peer() { # $1 size, $2 kind
  local s e
  if [ "$2" = nats_jetstream ]; then
    s=$(now); timed BENCH bench.peerjs --js --maxbytes 4GB --sub 1 --push --consumerbatch 1024 --msgs "$N" --size "$1"
    e=$(now)
    "$NATS" -s "$U" consumer rm benchstream natscli-bench -f >/dev/null 2>&1 || true
  else
    BENCH bench.core --sub 1 --msgs "$N" --size "$1" > "$WORK/sub.out" 2>&1 & sub=$!
    sleep 1   # no readiness to ask the CLI for: it subscribes at once, well within this
    s=$(now)
    BENCH bench.core --pub 1 --msgs "$N" --size "$1" > /dev/null 2>&1
    wait $sub || fail "nats bench --sub: $(tail -3 "$WORK/sub.out")"
    e=$(now)
  fi
  echo "$(rate "$N" "$s" "$e") $N"
}

echo "| kind | size | sluice generate → output | nats bench --pub | ratio | sluice input → drop | nats bench --sub | ratio |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
col() { cut -d' ' -f"$1" | median; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1/$2}'; }
for kind in ${KINDS:-nats nats_jetstream}; do
  for size in $SIZES; do
    ps=(); pp=(); cs=(); cp=()
    for r in $(seq "$RUNS"); do
      pp+=("$(produce_peer "$size" "$kind")")   # JetStream: fills the stream both consumers read
      cs+=("$(consume_sluice "$size" "$kind")")
      cp+=("$(consume_peer "$size" "$kind")")
      ps+=("$(produce_sluice "$size" "$kind")")
    done
    for v in "${ps[@]}" "${pp[@]}" "${cs[@]}" "${cp[@]}"; do figure "${v%% *}" "a $kind $size B run"; done
    a=$(printf '%s\n' "${ps[@]}" | median); b=$(printf '%s\n' "${pp[@]}" | median)
    c=$(printf '%s\n' "${cs[@]}" | col 1); d=$(printf '%s\n' "${cp[@]}" | col 1)
    got=$(printf '%s\n' "${cs[@]}" | col 2)
    note=""; [ "${got%.*}" -lt "$N" ] && note=" (median $got of $N arrived)"
    echo "| $kind | $size B | $a msg/s | $b msg/s | $(ratio "$a" "$b") | $c msg/s$note | $d msg/s | $(ratio "$c" "$d") |"
  done
done
