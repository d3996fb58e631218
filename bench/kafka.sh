#!/bin/bash
# Kafka throughput beside librdkafka used directly (kcat), same broker, same
# run: produce N messages of SIZE bytes (sluice: generate → kafka output;
# kcat -P from a file, both acks=all + idempotence), then consume them all
# (sluice: kafka input → drop, timed from start until /metrics counts N;
# kcat -G as a consumer group member, timed from start to its exit; both
# read the topic kcat produced, each in its own group). Each topic exists
# (one message) before its producer is timed.
# The broker is a single-node KRaft Kafka started by scripts/kafka.sh.
# Usage: bench/kafka.sh   (N=500000 SIZES="100 1024" RUNS=3 by default)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-500000}
SIZES=${SIZES:-100 1024}
RUNS=${RUNS:-3}
KPORT=${KPORT:-19392}
HPORT=${HPORT:-18393}
WORK=$(mktemp -d)
trap 'scripts/kafka.sh stop "$WORK/kafka" >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
mkdir -p "$WORK/kafka"
scripts/kafka.sh start "$WORK/kafka" "$KPORT" >&2
B=127.0.0.1:$KPORT
# The first consumer group on a fresh broker creates __consumer_offsets (50
# partitions, seconds): done here, so that no timed consumer pays for it.
echo warm | kcat -P -b "$B" -t warmup 2>/dev/null
kcat -b "$B" -G warmup -X auto.offset.reset=earliest -e -q -c 1 warmup >/dev/null 2>&1

# A topic is created (auto-create, by one message) before the clock starts:
# otherwise both producers' figures mostly measure the broker creating it.
precreate() { echo warm | kcat -P -b "$B" -t "$1" 2>/dev/null; }

# Each measure prints "rate cpu": messages per wall second, and CPU seconds
# (user + system, every thread) the process spent per million messages: on a
# shared machine the second is the steadier figure.
cpu_of() { echo "$N $1" | awk '{printf "%.2f\n", $2 / ($1 / 1e6)}'; }
timed() {
  /usr/bin/time -f "%U %S" -o "$WORK/time" "$@" > /dev/null || fail "$* failed"
  awk '{print $1 + $2}' "$WORK/time"
}

produce_sluice() { # $1 size, $2 topic
  cat > "$WORK/p.yaml" <<YAML
input: {generate: {count: $N, interval: 0, batch_size: 1024, mapping: 'return string.rep("x", $1)'}}
max_in_flight: 64
output: {kafka: {addresses: [$B], topic: $2, metadata_headers: false}}
YAML
  precreate "$2"
  s=$(now); c=$(timed "$BIN" run --log-level warn "$WORK/p.yaml"); e=$(now)
  echo "$(rate_between "$s" "$e") $(cpu_of "$c")"
}

produce_kcat() { # $1 size, $2 topic
  [ -f "$WORK/data-$1" ] || awk -v n="$N" -v s="$1" 'BEGIN {l = sprintf("%" s "s", ""); gsub(/ /, "x", l); for (i = 0; i < n; i++) print l}' > "$WORK/data-$1"
  precreate "$2"
  s=$(now)
  c=$(timed kcat -P -b "$B" -t "$2" -X acks=all -X enable.idempotence=true -X linger.ms=5 -l "$WORK/data-$1")
  e=$(now); echo "$(rate_between "$s" "$e") $(cpu_of "$c")"
}

consume_sluice() { # $1 topic
  cat > "$WORK/c.yaml" <<YAML
http: {address: 127.0.0.1:$HPORT}
input: {kafka: {addresses: [$B], topics: [$1], consumer_group: bench-$RANDOM$RANDOM, batching: {count: 1024, period: 100ms}, checkpoint_limit: 65536}}
max_in_flight: 64
output: {drop: {}}
YAML
  s=$(now)
  "$BIN" run --log-level warn "$WORK/c.yaml" & pid=$!
  wait_received $pid "$HPORT" "$N" 1200 0.05 "kafka → drop"
  e=$(now)
  [ "${got:-0}" -ge "$N" ] || fail "sluice consumed ${got:-0} of $N messages of $1 in 60 s"
  c=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")   # clock ticks (USER_HZ 100)
  kill $pid; wait $pid 2>/dev/null || true
  echo "$(rate_between "$s" "$e") $(cpu_of "$c")"
}

consume_kcat() { # $1 topic: as a group member too, so both pay for joining
  s=$(now)
  c=$(timed kcat -b "$B" -G "kbench-$RANDOM$RANDOM" -X auto.offset.reset=earliest -e -q -c "$N" "$1")
  e=$(now); echo "$(rate_between "$s" "$e") $(cpu_of "$c")"
}

echo "| message size | sluice generate → kafka | kcat -P | ratio | CPU s/M msgs sluice / kcat | sluice kafka → drop | kcat -G | ratio | CPU s/M msgs sluice / kcat |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
col() { cut -d' ' -f"$1" | median; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1/$2}'; }
for size in $SIZES; do
  ps=(); pk=(); cs=(); ck=()
  for r in $(seq "$RUNS"); do
    ps+=("$(produce_sluice "$size" "s-$size-$r")")
    pk+=("$(produce_kcat "$size" "k-$size-$r")")
    cs+=("$(consume_sluice "k-$size-$r")")   # the same topic as kcat's consumer
    ck+=("$(consume_kcat "k-$size-$r")")
  done
  # a run that failed left an empty entry (its reason is on stderr)
  for v in "${ps[@]}" "${pk[@]}" "${cs[@]}" "${ck[@]}"; do figure "${v%% *}" "a $size B run"; done
  a=$(printf '%s\n' "${ps[@]}" | col 1); b=$(printf '%s\n' "${pk[@]}" | col 1)
  ac=$(printf '%s\n' "${ps[@]}" | col 2); bc=$(printf '%s\n' "${pk[@]}" | col 2)
  c=$(printf '%s\n' "${cs[@]}" | col 1); d=$(printf '%s\n' "${ck[@]}" | col 1)
  cc=$(printf '%s\n' "${cs[@]}" | col 2); dc=$(printf '%s\n' "${ck[@]}" | col 2)
  echo "| $size B | $a msg/s | $b msg/s | $(ratio "$a" "$b") | $ac / $bc | $c msg/s | $d msg/s | $(ratio "$c" "$d") | $cc / $dc |"
done
