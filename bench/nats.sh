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
# Benthos v4.27.0 (built from source with its nats components, bench/lib.sh)
# runs the same two pipelines as sluice, beside it in the same run: its
# `generate` (a literal payload, batch_size 1024) → nats/nats_jetstream
# (max_in_flight 64 / 1024), and nats/nats_jetstream (same durable settings)
# → drop, counted through its own /metrics.
# Wall time from process start to exit (or to N counted), so all pay for
# connecting. Beside each rate, the CPU (user+sys) the process took per
# message, in µs, measured as bench/nats_floor.sh does (the whole process,
# exec to exit, connecting included; consumers: until N counted). The issue's
# target is the rate ratio; CPU per message says why (on 2 cores the
# publisher and nats-server share the CPU), but nats bench's own moves 2-3x
# with the machine's load, lower when loaded (bench/RESULTS.md, session 9):
# compare CPU within one run only. nats-server is Debian's (-js, store in a
# temp dir); the nats CLI comes from the Go module proxy (go install, once).
# PIN=1 pins nats-server and the publisher that feeds a core consumer to CPU 0
# and the client measured to CPU 1: on 2 cores the split of the CPU between
# client and server otherwise decides a 100 B cell (back-to-back quiet runs
# moved one by 1.5x, bench/RESULTS.md session 9).
# Usage: bench/nats.sh   (N=1000000 SIZES="100 1024" RUNS=3 PIN=0 by default)
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
BENTHOS=${BENTHOS:-$HOME/.cache/sluice-bench/benthos-brokers/benthos}
[ -x "$BENTHOS" ] || benthos_build "$(dirname "$BENTHOS")" pure nats mqtt amqp09 prometheus
NATS=${NATS_CLI:-$(command -v nats || echo "$HOME/go/bin/nats")}
if [ ! -x "$NATS" ]; then
  command -v go >/dev/null || fail "the nats CLI is missing and there is no go to install it"
  go install "github.com/nats-io/natscli/nats@$NATSCLI_VERSION" >&2
  NATS=$(go env GOPATH)/bin/nats
fi
SRV_ON=() CLI_ON=()
[ "${PIN:-0}" = 1 ] && SRV_ON=(taskset -c 0) CLI_ON=(taskset -c 1)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
"${SRV_ON[@]}" nats-server -js -sd "$WORK/js" -a 127.0.0.1 -p "$NPORT" -l "$WORK/server.log" & SRV=$!
U=nats://127.0.0.1:$NPORT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$NPORT) 2>/dev/null && break; sleep 0.05; done
BENCH() { "${SRV_ON[@]}" "$NATS" -s "$U" bench --no-progress "$@"; }

rate() { echo "$1 $2 $3" | awk '{printf "%d\n", $1 / ($3 - $2)}'; }   # count start end
# Runs "$@"; its CPU seconds (user+sys, children included) go to $WORK/cpu.
timed() {
  /usr/bin/time -o "$WORK/cpu" -f "%U %S" "${CLI_ON[@]}" "$@" > "$WORK/cmd.out" 2>&1 || fail "$* failed: $(tail -5 "$WORK/cmd.out")"
  awk '{print $1 + $2}' "$WORK/cpu" > "$WORK/cpu.s"
}
# µs of CPU per message: seconds count
per_msg() { echo "$1 $2" | awk '{printf "%.3f\n", $1 * 1e6 / ($2 > 0 ? $2 : 1)}'; }
# CPU seconds a running process took so far (user+sys, from /proc)
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

# Until the /metrics of sluice (or Benthos) counts $1 messages in (120 s at
# most, or once the count stood still for 2 s: core NATS drops what a slow
# consumer missed); prints the count.
count_in() { python3 bench/count_in.py "$HPORT" "$1" 120 0 2; }

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
  echo "$(rate "$N" "$s" "$e") $(per_msg "$(cat "$WORK/cpu.s")" "$N")"
}

produce_benthos() { # $1 size, $2 output kind
  local subject=bench.core inflight=64
  [ "$2" = nats_jetstream ] && subject=bench.peerjs inflight=1024
  cat > "$WORK/bp.yaml" <<YAML
http: {enabled: false}
logger: {level: warn}
metrics: {prometheus: {}}
input: {generate: {count: $N, interval: "", batch_size: 1024, mapping: 'root = "$(head -c "$1" /dev/zero | tr '\0' x)"'}}
output: {$2: {urls: [$U], subject: $subject, max_in_flight: $inflight}}
YAML
  local s e; s=$(now); timed "$BENTHOS" -c "$WORK/bp.yaml"; e=$(now)
  echo "$(rate "$N" "$s" "$e") $(per_msg "$(cat "$WORK/cpu.s")" "$N")"
}

produce_peer() { # $1 size, $2 kind
  local s e; s=$(now)
  if [ "$2" = nats_jetstream ]; then
    timed "$NATS" -s "$U" bench --no-progress bench.peerjs --js --purge --maxbytes 4GB --pub 1 --msgs "$N" --size "$1" --pubbatch 1024
  else timed "$NATS" -s "$U" bench --no-progress bench.core --pub 1 --msgs "$N" --size "$1"; fi
  e=$(now); echo "$(rate "$N" "$s" "$e") $(per_msg "$(cat "$WORK/cpu.s")" "$N")"
}

# Runs "$@" (a consumer of kind $2 with /metrics on HPORT): JetStream timed
# from its start (the stream is full), core NATS from when it is ready and
# nats bench starts publishing $1-byte messages; until it counted N (or the
# count stood still). Prints "rate count cpu-µs-per-message".
consume_until() {
  local size=$1 kind=$2 s e got pid; shift 2
  [ "$kind" = nats_jetstream ] && s=$(now)
  "${CLI_ON[@]}" "$@" > "$WORK/consumer.log" 2>&1 & pid=$!
  if [ "$kind" != nats_jetstream ]; then
    wait_http "127.0.0.1:$HPORT/ready" $pid
    for _ in $(seq 200); do curl -sf "127.0.0.1:$HPORT/ready" >/dev/null && break; sleep 0.05; done
    s=$(now)
    BENCH bench.core --pub 1 --msgs "$N" --size "$size" > /dev/null 2>&1 &
  fi
  got=$(count_in "$N"); e=$(now)
  local cpu; cpu=$(cpu_of $pid)
  kill $pid; wait $pid 2>/dev/null || true
  wait 2>/dev/null || true
  echo "$(rate "$got" "$s" "$e") $got $(per_msg "$cpu" "$got")"
}

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
  consume_until "$1" "$2" "$BIN" run --log-level warn "$WORK/c.yaml"
}

consume_benthos() { # $1 size, $2 kind
  if [ "$2" = nats_jetstream ]; then
    in="nats_jetstream: {urls: [$U], subject: bench.peerjs, durable: bb$RANDOM$RANDOM, deliver: all, max_ack_pending: 1024}"
  else
    in="nats: {urls: [$U], subject: bench.core}"
  fi
  cat > "$WORK/bc.yaml" <<YAML
http: {address: 127.0.0.1:$HPORT}
logger: {level: warn}
metrics: {prometheus: {}}
input: {$in}
output: {drop: {}}
YAML
  consume_until "$1" "$2" "$BENTHOS" -c "$WORK/bc.yaml"
}

consume_peer() { # $1 size, $2 kind
  local s e
  if [ "$2" = nats_jetstream ]; then
    s=$(now); timed "$NATS" -s "$U" bench --no-progress bench.peerjs --js --maxbytes 4GB --sub 1 --push --consumerbatch 1024 --msgs "$N" --size "$1"
    e=$(now)
    "$NATS" -s "$U" consumer rm benchstream natscli-bench -f >/dev/null 2>&1 || true
  else
    /usr/bin/time -o "$WORK/cpu" -f "%U %S" "${CLI_ON[@]}" "$NATS" -s "$U" bench --no-progress bench.core --sub 1 --msgs "$N" \
      --size "$1" > "$WORK/sub.out" 2>&1 & sub=$!
    sleep 1   # no readiness to ask the CLI for: it subscribes at once, well within this
    s=$(now)
    BENCH bench.core --pub 1 --msgs "$N" --size "$1" > /dev/null 2>&1
    wait $sub || fail "nats bench --sub: $(tail -3 "$WORK/sub.out")"
    e=$(now)
    awk '{print $1 + $2}' "$WORK/cpu" > "$WORK/cpu.s"
  fi
  echo "$(rate "$N" "$s" "$e") $N $(per_msg "$(cat "$WORK/cpu.s")" "$N")"
}

echo "| kind | size | sluice generate → output | nats bench --pub | ratio | Benthos generate → output | sluice/Benthos | sluice input → drop | nats bench --sub | ratio | Benthos input → drop | sluice/Benthos | CPU µs/msg out: sluice / nats bench / Benthos | in: sluice / nats bench / Benthos |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
col() { cut -d' ' -f"$1" | median; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1/$2}'; }
# "(median M of N arrived)" when a consumer lost some (core NATS drops for slow consumers)
arrived() { local got; got=$(printf '%s\n' "$@" | col 2); [ "${got%.*}" -lt "$N" ] && echo " (median $got of $N arrived)"; true; }
for kind in ${KINDS:-nats nats_jetstream}; do
  for size in $SIZES; do
    ps=(); pp=(); pb=(); cs=(); cp=(); cb=()
    for r in $(seq "$RUNS"); do
      pp+=("$(produce_peer "$size" "$kind")")   # JetStream: fills the stream the consumers read
      cs+=("$(consume_sluice "$size" "$kind")")
      cb+=("$(consume_benthos "$size" "$kind")")
      cp+=("$(consume_peer "$size" "$kind")")
      ps+=("$(produce_sluice "$size" "$kind")")
      pb+=("$(produce_benthos "$size" "$kind")")
    done
    for v in "${ps[@]}" "${pp[@]}" "${pb[@]}" "${cs[@]}" "${cp[@]}" "${cb[@]}"; do figure "${v%% *}" "a $kind $size B run"; done
    a=$(printf '%s\n' "${ps[@]}" | median); b=$(printf '%s\n' "${pp[@]}" | median); bb=$(printf '%s\n' "${pb[@]}" | median)
    c=$(printf '%s\n' "${cs[@]}" | col 1); d=$(printf '%s\n' "${cp[@]}" | col 1); cbb=$(printf '%s\n' "${cb[@]}" | col 1)
    ua=$(printf '%s\n' "${ps[@]}" | col 2); ub=$(printf '%s\n' "${pp[@]}" | col 2); ubb=$(printf '%s\n' "${pb[@]}" | col 2)
    uc=$(printf '%s\n' "${cs[@]}" | col 3); ud=$(printf '%s\n' "${cp[@]}" | col 3); ucb=$(printf '%s\n' "${cb[@]}" | col 3)
    echo "| $kind | $size B | $a msg/s | $b msg/s | $(ratio "$a" "$b") | $bb msg/s | $(ratio "$a" "$bb") | $c msg/s$(arrived "${cs[@]}") | $d msg/s | $(ratio "$c" "$d") | $cbb msg/s$(arrived "${cb[@]}") | $(ratio "$c" "$cbb") | $ua / $ub / $ubb | $uc / $ud / $ucb |"
  done
done
