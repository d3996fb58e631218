#!/bin/bash
# MQTT throughput beside libmosquitto used directly (bench/mqtt_peer.c,
# compiled here: its own loop, as fast as it goes), same Mosquitto broker
# (Debian's, on loopback, in memory), same run, QoS 1 on both sides:
#  - produce N messages of SIZE bytes: sluice generate → mqtt output
#    (max_in_flight 64) against mqtt_peer pub with 64 in flight, each timed
#    from start until every message is acknowledged (exit);
#  - consume them: N messages queued first for an offline persistent session
#    (by mqtt_peer pub), then drained by sluice mqtt input → drop (timed from
#    start until /metrics counts N) against mqtt_peer sub (timed from start
#    to exit); the broker sends each at most max_inflight_messages
#    (INFLIGHT) unacknowledged, and sluice acknowledges a message only once its
#    pipeline did.
# Benthos v4.27.0 (built from source with its mqtt components, bench/lib.sh)
# runs the same pipelines beside them: generate → mqtt (QoS 1,
# max_in_flight 64) and mqtt (QoS 1, the same persistent session) → drop,
# counted through its /metrics.
# mosquitto_pub -l is no peer: at the end of its input it disconnects with
# QoS 1 messages still queued, which are lost (200k sent, 3k-69k arrived).
# Usage: bench/mqtt.sh   (N=1000000 SIZES="100 1024" RUNS=3 by default;
# INFLIGHT=20 is the broker's max_inflight_messages, Mosquitto's default;
# SAME=1: sluice and mqtt_peer drain their sessions at the same time, each
# timed from the common start, so that both see the same load of a shared
# machine, which one after the other they do not)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-1000000}
SIZES=${SIZES:-100 1024}
RUNS=${RUNS:-3}
INFLIGHT=${INFLIGHT:-20}
MPORT=${MPORT:-19883}
HPORT=${HPORT:-18883}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
cat > "$WORK/m.conf" <<CONF
listener $MPORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages $INFLIGHT
CONF
cc -O2 -Wall -Wextra -Werror -o "$WORK/mqtt_peer" bench/mqtt_peer.c -lmosquitto
PEER=$WORK/mqtt_peer
BENTHOS=${BENTHOS:-$HOME/.cache/sluice-bench/benthos-brokers/benthos}
[ -x "$BENTHOS" ] || benthos_build "$(dirname "$BENTHOS")" pure nats mqtt amqp09 prometheus
mosquitto -c "$WORK/m.conf" > "$WORK/broker.log" 2>&1 &
for _ in $(seq 100); do mosquitto_pub -p "$MPORT" -t warm -n 2>/dev/null && break; sleep 0.1; done
mosquitto_pub -p "$MPORT" -t warm -n || fail "mosquitto did not start: $(cat "$WORK/broker.log")"

# Each measure prints "rate cpu": messages per wall second, and CPU seconds
# (user + system) the client spent per million messages: on a shared
# machine the second is the steadier figure.
cpu() { awk -v n="$N" '{printf "%.2f\n", ($1 + $2) / (n / 1e6)}' "$WORK/time"; }
T() { /usr/bin/time -f "%U %S" -o "$WORK/time" "$@"; }

produce_sluice() { # $1 size
  cat > "$WORK/p.yaml" <<YAML
input: {generate: {count: $N, interval: 0, batch_size: 1024, mapping: 'return string.rep("x", $1)'}}
max_in_flight: 64
output: {mqtt: {urls: [tcp://127.0.0.1:$MPORT], topic: bench/p, qos: 1}}
YAML
  s=$(now); T "$BIN" run --log-level warn "$WORK/p.yaml" > /dev/null || fail "sluice generate → mqtt failed"; e=$(now)
  echo "$(rate_between "$s" "$e") $(cpu)"
}

produce_peer() { # $1 size
  s=$(now); T "$PEER" pub "$MPORT" bench/p "$N" "$1" 1 64 || fail "mqtt_peer pub failed"; e=$(now)
  echo "$(rate_between "$s" "$e") $(cpu)"
}

produce_benthos() { # $1 size
  cat > "$WORK/bp.yaml" <<YAML
http: {enabled: false}
logger: {level: warn}
input: {generate: {count: $N, interval: "", batch_size: 1024, mapping: 'root = "$(head -c "$1" /dev/zero | tr '\0' x)"'}}
output: {mqtt: {urls: [tcp://127.0.0.1:$MPORT], topic: bench/p, qos: 1, max_in_flight: 64}}
YAML
  s=$(now); T "$BENTHOS" -c "$WORK/bp.yaml" > /dev/null || fail "Benthos generate → mqtt failed"; e=$(now)
  echo "$(rate_between "$s" "$e") $(cpu)"
}

# N messages queued for the offline persistent session $1.
preload() { # $1 client id, $2 size
  mosquitto_sub -p "$MPORT" -i "$1" -c -q 1 -t "bench/c/$1" -E
  "$PEER" pub "$MPORT" "bench/c/$1" "$N" "$2" 1 64 || fail "mqtt_peer pub (preload) failed"
}

consume_sluice() { # $1 size
  id=s$RANDOM$RANDOM
  preload "$id" "$1"
  consume_sluice_from "" "$1"
}

# Drains the session $id preloaded by the caller, timed from $1 (or now).
consume_sluice_from() { # $1 start or "", $2 size
  cat > "$WORK/c.yaml" <<YAML
http: {address: 127.0.0.1:$HPORT}
input: {mqtt: {urls: [tcp://127.0.0.1:$MPORT], topics: [bench/c/$id], client_id: $id, clean_session: false, qos: 1}}
max_in_flight: 64
output: {drop: {}}
YAML
  s=${1:-$(now)}
  /usr/bin/time -f "%U %S" -o "$WORK/time" "$BIN" run --log-level warn "$WORK/c.yaml" & pid=$!
  wait_received $pid "$HPORT" "$N" 12000 0.02 "mqtt → drop"
  e=$(now)
  kill "$(pgrep -P $pid)"; wait $pid || true   # sluice, under time
  [ "${got:-0}" -ge "$N" ] || fail "sluice received ${got:-0} of $N"
  echo "$(rate_between "$s" "$e") $(cpu)"
}

consume_benthos() { # $1 size
  id=b$RANDOM$RANDOM
  preload "$id" "$1"
  cat > "$WORK/bc.yaml" <<YAML
http: {address: 127.0.0.1:$HPORT}
logger: {level: warn}
metrics: {prometheus: {}}
input: {mqtt: {urls: [tcp://127.0.0.1:$MPORT], topics: [bench/c/$id], client_id: $id, clean_session: false, qos: 1}}
output: {drop: {}}
YAML
  s=$(now)
  /usr/bin/time -f "%U %S" -o "$WORK/time" "$BENTHOS" -c "$WORK/bc.yaml" > "$WORK/benthos.log" 2>&1 & pid=$!
  wait_received $pid "$HPORT" "$N" 12000 0.02 "Benthos mqtt → drop"
  e=$(now)
  kill "$(pgrep -P $pid)"; wait $pid || true   # Benthos, under time
  [ "${got:-0}" -ge "$N" ] || fail "Benthos received ${got:-0} of $N"
  echo "$(rate_between "$s" "$e") $(cpu)"
}

consume_peer() { # $1 size
  id=p$RANDOM$RANDOM
  preload "$id" "$1"
  s=$(now); T "$PEER" sub "$MPORT" "bench/c/$id" "$N" 1 "$id" || fail "mqtt_peer sub failed"; e=$(now)
  echo "$(rate_between "$s" "$e") $(cpu)"
}

# SAME=1: both at once; appends sluice's figures to $WORK/s, the peer's to $WORK/p.
consume_same() { # $1 size
  id=s$RANDOM$RANDOM pid_=p$RANDOM$RANDOM
  preload "$id" "$1"
  preload "$pid_" "$1"
  s=$(now)
  ( /usr/bin/time -f "%U %S" -o "$WORK/ptime" "$PEER" sub "$MPORT" "bench/c/$pid_" "$N" 1 "$pid_" ||
      fail "mqtt_peer sub failed"; echo "$(rate_between "$s" "$(now)")" > "$WORK/prate" ) &
  peer=$!
  consume_sluice_from "$s" "$1" >> "$WORK/s"
  wait $peer
  echo "$(cat "$WORK/prate") $(awk -v n="$N" '{printf "%.2f\n", ($1 + $2) / (n / 1e6)}' "$WORK/ptime")" >> "$WORK/p"
}

echo "| benchmark (QoS 1, $N messages, broker max_inflight_messages $INFLIGHT) | sluice msg/s | mqtt_peer msg/s | ratio | Benthos msg/s | sluice/Benthos | CPU s/1M sluice / peer / Benthos |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for size in $SIZES; do
  for dir in produce consume; do
    : > "$WORK/s"; : > "$WORK/p"; : > "$WORK/b"
    for _ in $(seq "$RUNS"); do
      if [ "${SAME:-0}" = 1 ] && [ "$dir" = consume ]; then
        consume_same "$size"
      else
        ${dir}_sluice "$size" >> "$WORK/s"
        ${dir}_peer "$size" >> "$WORK/p"
      fi
      ${dir}_benthos "$size" >> "$WORK/b"
    done
    s=$(awk '{print $1}' "$WORK/s" | median); p=$(awk '{print $1}' "$WORK/p" | median); b=$(awk '{print $1}' "$WORK/b" | median)
    sc=$(awk '{print $2}' "$WORK/s" | median); pc=$(awk '{print $2}' "$WORK/p" | median); bc=$(awk '{print $2}' "$WORK/b" | median)
    figure "$s" "sluice $dir $size"; figure "$p" "peer $dir $size"; figure "$b" "Benthos $dir $size"
    figure "$sc" "sluice CPU"; figure "$pc" "peer CPU"
    if [ "$dir" = produce ]; then what="generate → mqtt output vs mqtt_peer pub"; else what="mqtt input → drop vs mqtt_peer sub"; fi
    echo "| $what, $size B | $s | $p | $(echo "$s $p" | awk '{printf "%.2f", $1 / $2}') | $b | $(echo "$s $b" | awk '{printf "%.2f", $1 / $2}') | $sc / $pc / $bc |"
  done
done
