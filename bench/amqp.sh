#!/bin/bash
# AMQP 0.9.1 throughput beside librabbitmq used directly, same broker, same
# run, same delivery guarantee: produce N messages of SIZE bytes with
# publisher confirms (sluice: generate → amqp_0_9 output, 64 batches of 64
# awaiting confirms; raw: bench/amqp_raw.c, 4096 unconfirmed at most), then
# consume them with acks (sluice: amqp_0_9 input → drop, prefetch 4096,
# transactions of up to 1024 deliveries, each acked as one multiple ack,
# timed from start until /metrics counts N; raw: prefetch 4096, a multiple
# ack every 2048). librabbitmq's own amqp_producer/amqp_consumer examples
# publish without confirms and consume without acks, so the raw client is
# compiled here from bench/amqp_raw.c. Each consumer reads a queue the other
# side's producer filled. The broker is scripts/rabbitmq.sh's own node.
# Benthos v4.27.0 (built from source with its amqp09 components, bench/lib.sh)
# runs the same pipelines beside them: generate → amqp_0_9 (max_in_flight
# 64; it waits for each publish's confirm) and amqp_0_9 (prefetch 4096, an
# ack per message once handled) → drop, counted through its /metrics.
# Usage: bench/amqp.sh   (N=1000000 SIZES="100 1024" RUNS=1 by default)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-1000000}
SIZES=${SIZES:-100 1024}
RUNS=${RUNS:-1}
APORT=${APORT:-19572}
HPORT=${HPORT:-18573}
WORK=$(mktemp -d)
trap 'scripts/rabbitmq.sh stop "$WORK/mq" >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
cc -O2 -o "$WORK/amqp_raw" bench/amqp_raw.c -lrabbitmq || fail "cannot build bench/amqp_raw.c"
RAW=$WORK/amqp_raw
BENTHOS=${BENTHOS:-$HOME/.cache/sluice-bench/benthos-brokers/benthos}
[ -x "$BENTHOS" ] || benthos_build "$(dirname "$BENTHOS")" pure nats mqtt amqp09 prometheus
mkdir -p "$WORK/mq"
scripts/rabbitmq.sh start "$WORK/mq" "$APORT" >&2
URL=amqp://guest:guest@127.0.0.1:$APORT/
declare_q() { amqp-declare-queue -u "amqp://guest:guest@127.0.0.1:$APORT" -q "$1" > /dev/null; }

cpu_of() { echo "$N $1" | awk '{printf "%.2f\n", $2 / ($1 / 1e6)}'; }
timed() {
  /usr/bin/time -f "%U %S" -o "$WORK/time" "$@" > /dev/null || fail "$* failed"
  awk '{print $1 + $2}' "$WORK/time"
}

produce_sluice() { # $1 size, $2 queue
  cat > "$WORK/p.yaml" <<YAML
input: {generate: {count: $N, interval: 0, batch_size: 64, mapping: 'return string.rep("x", $1)'}}
max_in_flight: 64
output: {amqp_0_9: {urls: ["$URL"], exchange: "", key: $2, max_in_flight: 64, content_type: ""}}
YAML
  declare_q "$2"
  s=$(now); c=$(timed "$BIN" run --log-level warn "$WORK/p.yaml"); e=$(now)
  echo "$(rate_between "$s" "$e") $(cpu_of "$c")"
}

produce_raw() { # $1 size, $2 queue
  declare_q "$2"
  s=$(now); c=$(timed "$RAW" produce 127.0.0.1 "$APORT" "$2" "$N" "$1" 4096); e=$(now)
  echo "$(rate_between "$s" "$e") $(cpu_of "$c")"
}

# Runs "$@" (a consumer with /metrics on HPORT) until it counted N; prints
# "rate cpu". $1 names it in errors, $2 the queue.
consume_until() {
  local who=$1 q=$2; shift 2
  s=$(now)
  "$@" > "$WORK/consumer.log" 2>&1 & pid=$!
  wait_received $pid "$HPORT" "$N" 6000 0.05 "$who"
  e=$(now)
  [ "${got:-0}" -ge "$N" ] || fail "$who consumed ${got:-0} of $N messages of $q"
  c=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")
  kill $pid; wait $pid 2>/dev/null || true
  echo "$(rate_between "$s" "$e") $(cpu_of "$c")"
}

consume_sluice() { # $1 queue
  cat > "$WORK/c.yaml" <<YAML
http: {address: 127.0.0.1:$HPORT}
input: {amqp_0_9: {urls: ["$URL"], queue: $1, prefetch_count: 4096, batching: {count: 1024, period: 100ms}}}
max_in_flight: 64
output: {drop: {}}
YAML
  consume_until "sluice amqp_0_9 → drop" "$1" "$BIN" run --log-level warn "$WORK/c.yaml"
}

produce_benthos() { # $1 size, $2 queue
  cat > "$WORK/bp.yaml" <<YAML
http: {enabled: false}
logger: {level: warn}
input: {generate: {count: $N, interval: "", batch_size: 64, mapping: 'root = "$(head -c "$1" /dev/zero | tr '\0' x)"'}}
output: {amqp_0_9: {urls: ["$URL"], exchange: "", key: $2, max_in_flight: 64}}
YAML
  declare_q "$2"
  s=$(now); c=$(timed "$BENTHOS" -c "$WORK/bp.yaml"); e=$(now)
  echo "$(rate_between "$s" "$e") $(cpu_of "$c")"
}

consume_benthos() { # $1 queue
  cat > "$WORK/bc.yaml" <<YAML
http: {address: 127.0.0.1:$HPORT}
logger: {level: warn}
metrics: {prometheus: {}}
input: {amqp_0_9: {urls: ["$URL"], queue: $1, prefetch_count: 4096}}
output: {drop: {}}
YAML
  consume_until "Benthos amqp_0_9 → drop" "$1" "$BENTHOS" -c "$WORK/bc.yaml"
}

consume_raw() { # $1 queue
  s=$(now); c=$(timed "$RAW" consume 127.0.0.1 "$APORT" "$1" "$N" 4096); e=$(now)
  echo "$(rate_between "$s" "$e") $(cpu_of "$c")"
}

echo "| message size | sluice generate → amqp_0_9 (confirms) | amqp_raw produce (confirms) | ratio | Benthos generate → amqp_0_9 | sluice/Benthos | CPU s/M msgs sluice / raw / Benthos | sluice amqp_0_9 → drop (acks) | amqp_raw consume (acks) | ratio | Benthos amqp_0_9 → drop | sluice/Benthos | CPU s/M msgs sluice / raw / Benthos |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
col() { cut -d' ' -f"$1" | median; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1/$2}'; }
for size in $SIZES; do
  ps=(); pk=(); pb=(); cs=(); ck=(); cb=()
  for r in $(seq "$RUNS"); do
    ps+=("$(produce_sluice "$size" "s-$size-$r")")
    pk+=("$(produce_raw "$size" "r-$size-$r")")
    pb+=("$(produce_benthos "$size" "b-$size-$r")")
    cs+=("$(consume_sluice "r-$size-$r")")   # what the raw producer filled
    ck+=("$(consume_raw "s-$size-$r")")      # what sluice filled
    cb+=("$(consume_benthos "b-$size-$r")")  # what Benthos filled
  done
  for v in "${ps[@]}" "${pk[@]}" "${pb[@]}" "${cs[@]}" "${ck[@]}" "${cb[@]}"; do figure "${v%% *}" "a $size B run"; done
  a=$(printf '%s\n' "${ps[@]}" | col 1); b=$(printf '%s\n' "${pk[@]}" | col 1); bb=$(printf '%s\n' "${pb[@]}" | col 1)
  ac=$(printf '%s\n' "${ps[@]}" | col 2); bc=$(printf '%s\n' "${pk[@]}" | col 2); bbc=$(printf '%s\n' "${pb[@]}" | col 2)
  c=$(printf '%s\n' "${cs[@]}" | col 1); d=$(printf '%s\n' "${ck[@]}" | col 1); db=$(printf '%s\n' "${cb[@]}" | col 1)
  cc=$(printf '%s\n' "${cs[@]}" | col 2); dc=$(printf '%s\n' "${ck[@]}" | col 2); dbc=$(printf '%s\n' "${cb[@]}" | col 2)
  echo "| $size B | $a msg/s | $b msg/s | $(ratio "$a" "$b") | $bb msg/s | $(ratio "$a" "$bb") | $ac / $bc / $bbc | $c msg/s | $d msg/s | $(ratio "$c" "$d") | $db msg/s | $(ratio "$c" "$db") | $cc / $dc / $dbc |"
done
