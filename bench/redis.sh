#!/bin/bash
# Redis streams throughput of sluice's redis_streams output and input beside
# redis-benchmark and hiredis used directly (bench/redis_loop.c, compiled
# here), same redis-server, same run. Entries of SIZE bytes under `body`.
# Produce: sluice generate (batches of 1,024, max_in_flight 64) →
# redis_streams, timed from start to exit; redis-benchmark XADD with -c 50
# -P 100; the hiredis loop, one connection, 1,024 XADDs pipelined at a time.
# Consume: sluice redis_streams (limit 1,000) → drop, timed from start until
# /metrics counts N; the hiredis loop XREADGROUP COUNT 1000 then XACK, until
# N. Both read the stream the hiredis loop produced, each in its own group.
# redis-server: Debian's, AOF off, started here on its own port and dir.
# Usage: bench/redis.sh   (N=500000 SIZE=100 RUNS=3 by default)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-500000}
SIZE=${SIZE:-100}
RUNS=${RUNS:-3}
RPORT=${RPORT:-19479}
HPORT=${HPORT:-18479}
WORK=$(mktemp -d)
trap 'redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
cc -O2 -o "$WORK/redis_loop" bench/redis_loop.c -lhiredis || fail "cannot build bench/redis_loop.c"
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$WORK" --save '' --appendonly no --daemonize yes \
  --logfile "$WORK/redis.log" >/dev/null || fail "redis-server did not start"
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

ratio() { echo "$1 $2" | awk '{printf "%.2f", $1/$2}'; }
# CPU seconds (user + system) per million entries: on a shared machine the
# steadier figure (wall time depends on who else runs).
cpu_of() { echo "$N $1" | awk '{printf "%.2f\n", $2 / ($1 / 1e6)}'; }
timed() { # runs "$@", its stdout to $WORK/out; prints its CPU seconds
  /usr/bin/time -f "%U %S" -o "$WORK/time" "$@" > "$WORK/out" || fail "$* failed"
  awk '{print $1 + $2}' "$WORK/time"
}
body=$(head -c "$SIZE" /dev/zero | tr '\0' x)

produce_sluice() { # $1 stream
  cat > "$WORK/p.yaml" <<YAML
input: {generate: {count: $N, interval: 0, batch_size: 1024, mapping: 'return "$body"'}}
max_in_flight: 64
output: {redis_streams: {url: "redis://127.0.0.1:$RPORT", stream: $1, metadata_fields: false}}
YAML
  s=$(now); c=$(timed "$BIN" run --log-level warn "$WORK/p.yaml"); e=$(now)
  [ "$(redis-cli -p "$RPORT" xlen "$1")" -eq "$N" ] || fail "sluice wrote $(redis-cli -p "$RPORT" xlen "$1") of $N"
  echo "$(rate_between "$s" "$e") $(cpu_of "$c")"
}

produce_benchmark() { # $1 stream
  redis-benchmark -p "$RPORT" -n "$N" -c 50 -P 100 -q XADD "$1" '*' body "$body" |
    tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i <= NF; i++) if ($(i+1) == "requests") v = $i} END {print v}'
}

consume_sluice() { # $1 stream
  cat > "$WORK/c.yaml" <<YAML
http: {address: 127.0.0.1:$HPORT}
input: {redis_streams: {url: "redis://127.0.0.1:$RPORT", streams: [$1], consumer_group: s$RANDOM$RANDOM, limit: 1000}}
max_in_flight: 64
output: {drop: {}}
YAML
  s=$(now)
  "$BIN" run --log-level warn "$WORK/c.yaml" & pid=$!
  wait_received $pid "$HPORT" "$N" 1200 0.02 "redis_streams → drop"
  e=$(now)
  c=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")   # clock ticks (USER_HZ 100)
  kill $pid; wait $pid 2>/dev/null || true
  [ "${got:-0}" -ge "$N" ] || fail "sluice consumed ${got:-0} of $N in 24 s"
  echo "$(rate_between "$s" "$e") $(cpu_of "$c")"
}

ps=(); pb=(); pl=(); cs=(); cl=()
for r in $(seq "$RUNS"); do
  ps+=("$(produce_sluice "s-$r")")
  pb+=("$(produce_benchmark "b-$r")")
  c=$(timed "$WORK/redis_loop" "$RPORT" produce "l-$r" "$N" "$SIZE" 1024); pl+=("$(cat "$WORK/out") $(cpu_of "$c")")
  cs+=("$(consume_sluice "l-$r")")
  c=$(timed "$WORK/redis_loop" "$RPORT" consume "l-$r" "$N" 1000); cl+=("$(cat "$WORK/out") $(cpu_of "$c")")
  redis-cli -p "$RPORT" del "s-$r" "b-$r" "l-$r" >/dev/null
done
for v in "${ps[@]}" "${pb[@]}" "${pl[@]}" "${cs[@]}" "${cl[@]}"; do figure "${v%% *}" "a run"; done
col() { cut -d' ' -f"$1" | median; }
a=$(printf '%s\n' "${ps[@]}" | col 1); ac=$(printf '%s\n' "${ps[@]}" | col 2)
b=$(printf '%s\n' "${pb[@]}" | col 1)
l=$(printf '%s\n' "${pl[@]}" | col 1); lc=$(printf '%s\n' "${pl[@]}" | col 2)
c=$(printf '%s\n' "${cs[@]}" | col 1); cc=$(printf '%s\n' "${cs[@]}" | col 2)
d=$(printf '%s\n' "${cl[@]}" | col 1); dc=$(printf '%s\n' "${cl[@]}" | col 2)
echo "| entry size | sluice generate → redis_streams | redis-benchmark XADD -c 50 -P 100 | hiredis loop XADD | sluice / redis-benchmark | sluice / hiredis | CPU s/M sluice / hiredis | sluice redis_streams → drop | hiredis XREADGROUP+XACK | sluice / hiredis | CPU s/M sluice / hiredis |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
echo "| $SIZE B | $a/s | $b/s | $l/s | $(ratio "$a" "$b") | $(ratio "$a" "$l") | $ac / $lc | $c/s | $d/s | $(ratio "$c" "$d") | $cc / $dc |"
