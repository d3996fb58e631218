#!/bin/bash
# sluice beside Benthos v4.27.0 on the same work, same machine, same run
# (issue 18): each row runs every variant once per round, RUNS rounds
# interleaved, and reports medians and ratios. Variants: sluice at its
# defaults (pipeline.threads 1) and at `pipeline.threads: 2`; Benthos at its
# defaults and at `pipeline.threads: -1` (one per core). Rows without
# processors (http → drop, Kafka, startup, idle RSS) run the defaults only.
# Benthos is built from its public source by benthos_build (bench/lib.sh)
# with its pure, io, kafka and prometheus (its /metrics) components, unless
# BENTHOS names a binary.
# The Kafka broker is scripts/kafka.sh's (KRaft, one node, loopback).
# Usage: bench/peers.sh   Env: N (messages, 500000), RUNS (3), DURATION
# (wrk, 5s), KN (Kafka messages, 200000), SKIP_KAFKA=1 or KAFKA_ONLY=1.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
BENTHOS=${BENTHOS:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-bench/benthos-peers-v2/benthos}
[ -x "$BENTHOS" ] || benthos_build "$(dirname "$BENTHOS")" pure io kafka prometheus
N=${N:-500000}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
KN=${KN:-200000}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=${PORT:-$(free_port)}
KPORT=${KPORT:-$(free_port)}
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; [ -d "$WORK/kafka" ] && scripts/kafka.sh stop "$WORK/kafka" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)

MSG='{"user":"user-000042","event":"page_view","path":"/products/42/details","ts":1700000043,"agent":"Mozilla/5.0 (X11; Linux x86_64)","tags":["a","b","c"],"score":42.5,"ok":true}'
yes "$MSG" | head -n "$N" > "$WORK/in.ndjson"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"user":"ada","event":"click","n":42}'
wrk.headers["Content-Type"] = "application/json"
LUA

# The work of each row, as each side writes it: the same JSON message, the
# same mapping (decode, + a UUID, + a bool, encode), the same one-field
# filter (the message's ts is odd: every message is read and kept).
SL_MAP="    - lua: |
        this.id = uuid_v4()
        this.processed = true"
SL_FILTER="    - lua: 'if this.ts % 2 == 0 then return deleted() end'"
BT_MAP="    - mapping: |
        root = this
        root.id = uuid_v4()
        root.processed = true"
BT_FILTER="    - mapping: 'root = if this.ts % 2 == 0 { deleted() } else { this }'"

# config SIDE VARIANT INPUT PROCESSORS OUTPUT: a whole config; VARIANT is
# "default" or a pipeline.threads value.
config() {
  threads=""
  [ "$2" = default ] || threads="  threads: $2"
  # the HTTP server only where a row needs it (its input, or /metrics)
  case "$3" in
    *http_server*) echo "http: {address: 127.0.0.1:$PORT}" ;;
    *consumer_group*) echo "http: {address: 127.0.0.1:$PORT}" ;;
    *) [ "$1" = sluice ] || echo "http: {enabled: false}" ;;
  esac
  [ "$1" = sluice ] || echo "logger: {level: warn}"
  printf 'input:\n%s\npipeline:\n%s\n  processors:\n%s\noutput:\n%s\n' "$3" "$threads" "${4:-    []}" "$5"
}
gen_in() { # SIDE COUNT
  if [ "$1" = sluice ]; then
    printf "  generate: {count: %s, interval: 0, batch_size: 1024, mapping: 'return [[%s]]'}" "$2" "$MSG"
  else
    printf "  generate: {count: %s, interval: \"\", batch_size: 1024, mapping: 'root = \"\"\"%s\"\"\"'}" "$2" "$MSG"
  fi
}
run_side() { # SIDE CONFIG [stdin]: runs it to its end
  if [ "$1" = sluice ]; then "$BIN" run --log-level warn "$2" < "${3:-/dev/null}" > /dev/null
  else "$BENTHOS" -c "$2" < "${3:-/dev/null}" > /dev/null; fi || fail "$1 $2 failed"
}
serve_side() { # SIDE CONFIG: in the background, its pid in $WORK/srv.pid
  if [ "$1" = sluice ]; then "$BIN" run --log-level warn "$2" > "$WORK/srv.log" 2>&1 &
  else "$BENTHOS" -c "$2" > "$WORK/srv.log" 2>&1 & fi
  echo $! > "$WORK/srv.pid"
}
stop_side() { kill "$(cat "$WORK/srv.pid")" 2>/dev/null; wait "$(cat "$WORK/srv.pid")" 2>/dev/null || true; rm -f "$WORK/srv.pid"; }

# Each measure prints one figure (bigger is better for rates).
rate_run() { # SIDE CONFIG COUNT [stdin]: messages per wall second, and the CPU seconds (user + sys) spent
  s=$(now); /usr/bin/time -f "%U %S" -o "$WORK/cpu" bash -c "$(declare -f run_side fail); BIN=$BIN BENTHOS=$BENTHOS run_side $1 $2 ${4:-}"; e=$(now)
  echo "$3 $s $e $(cat "$WORK/cpu")" | awk '{printf "%d %.2f\n", $1 / ($3 - $2), $4 + $5}'
}
wrk_run() { # SIDE CONFIG: requests per second under wrk
  serve_side "$1" "$2"
  wait_http "http://127.0.0.1:$PORT/" "$(cat "$WORK/srv.pid")"
  wrk -t2 -c100 -d"$DURATION" -s "$WORK/post.lua" "http://127.0.0.1:$PORT/" > "$WORK/wrk.out"
  stop_side
  wrk_check "$WORK/wrk.out"
  awk '/^Requests\/sec/ {printf "%d\n", $2}' "$WORK/wrk.out"
}
startup_run() { # SIDE CONFIG: median wall ms of a start that does nothing (hyperfine)
  if [ "$1" = sluice ]; then c="$BIN run --log-level warn $2"; else c="$BENTHOS -c $2"; fi
  hyperfine -N -w 3 -r 20 --export-json "$WORK/hf.json" "$c" > /dev/null 2>&1 || fail "hyperfine $c failed"
  python3 -c 'import json, sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1e3))' "$WORK/hf.json"
}
rss_run() { # SIDE CONFIG: resident KiB once serving, idle
  serve_side "$1" "$2"
  wait_http "http://127.0.0.1:$PORT/" "$(cat "$WORK/srv.pid")"
  sleep 1
  awk '/^VmRSS/ {print $2}' "/proc/$(cat "$WORK/srv.pid")/status"
  stop_side
}

# row NAME UNIT VARIANTS...: each variant "side:variant:command..." is run
# RUNS times, interleaved; prints a table row of medians and ratios.
HEAD="| row | sluice | sluice threads 2 | Benthos | Benthos threads -1 | sluice / Benthos (defaults) | best / best |"
row() {
  name=$1 unit=$2; shift 2
  i=0
  for v in "$@"; do : > "$WORK/r$i"; i=$((i + 1)); done
  for _ in $(seq "$RUNS"); do
    i=0
    for v in "$@"; do rest=${v#*:}; ${rest#*:} >> "$WORK/r$i"; i=$((i + 1)); done
  done
  i=0; sl=""; sl2=""; bt=""; bt2=""
  for v in "$@"; do
    rest=${v#*:}
    m=$(awk '{print $1}' "$WORK/r$i" | median); figure "$m" "$name, ${v%%:*} ${rest%%:*}"
    # a measure's second figure is its CPU seconds: beside the rate, since the machine is shared
    if awk 'NF < 2 {exit 1}' "$WORK/r$i"; then m="$m (CPU $(awk '{print $2}' "$WORK/r$i" | median) s)"; fi
    case "${v%%:*}:${rest%%:*}" in
      sluice:default) sl=$m ;; sluice:2) sl2=$m ;; benthos:default) bt=$m ;; benthos:-1) bt2=$m ;;
    esac
    i=$((i + 1))
  done
  # a smaller figure is better for ms and KiB: the ratio is Benthos / sluice there
  awk -v n="$name" -v u="$unit" -v A="$sl" -v B="$sl2" -v C="$bt" -v D="$bt2" 'BEGIN {
    a = A + 0; b = B + 0; c = C + 0; d = D + 0
    low = (u == "ms" || u == "KiB")
    sb = (B != "" && (low ? b < a : b > a)) ? b : a; bb = (D != "" && (low ? d < c : d > c)) ? d : c
    r = low ? c / a : a / c; rb = low ? bb / sb : sb / bb
    sub(/ /, " " u " ", A); sub(/ /, " " u " ", B); sub(/ /, " " u " ", C); sub(/ /, " " u " ", D)
    if (A !~ / /) A = A " " u; if (B != "" && B !~ / /) B = B " " u; if (C !~ / /) C = C " " u; if (D != "" && D !~ / /) D = D " " u
    printf "| %s | %s | %s | %s | %s | %.2f× | %.2f× |\n", n, A, (B == "" ? "—" : B), C, (D == "" ? "—" : D), r, rb }'
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores; $N messages, $RUNS rounds, wrk $DURATION"
echo "$HEAD"
echo "| --- | --- | --- | --- | --- | --- | --- |"

for side in sluice benthos; do for t in default 2 -1; do
  [ "$side" = sluice ] && [ "$t" = -1 ] && continue
  [ "$side" = benthos ] && [ "$t" = 2 ] && continue
  p=$([ $side = sluice ] && echo "$SL_MAP" || echo "$BT_MAP")
  f=$([ $side = sluice ] && echo "$SL_FILTER" || echo "$BT_FILTER")
  config $side $t "$(gen_in $side "$N")" "$p" "  drop: {}" > "$WORK/map-$side$t.yaml"
  config $side $t "$(gen_in $side "$N")" "$f" "  drop: {}" > "$WORK/filter-$side$t.yaml"
  config $side $t "  stdin: {codec: lines}" "$p" "  stdout: {codec: lines}" > "$WORK/ndjson-$side$t.yaml"
  config $side $t "  http_server: {path: /}" "$p" "  sync_response: {}" > "$WORK/http-$side$t.yaml"
done; done
for side in sluice benthos; do
  config $side default "  http_server: {path: /}" "" "  drop: {}" > "$WORK/drop-$side.yaml"
  config $side default "$(gen_in $side 1)" "" "  drop: {}" > "$WORK/start-$side.yaml"
done

# four MEASURE CONFIG-NAME [ARG]: the four variants of a row, in V
four() {
  V=("sluice:default:$1 sluice $WORK/$2-sluicedefault.yaml ${3:-}" "sluice:2:$1 sluice $WORK/$2-sluice2.yaml ${3:-}"
     "benthos:default:$1 benthos $WORK/$2-benthosdefault.yaml ${3:-}" "benthos:-1:$1 benthos $WORK/$2-benthos-1.yaml ${3:-}")
}
two() { V=("sluice:default:$1 sluice $WORK/$2-sluice.yaml ${3:-}" "benthos:default:$1 benthos $WORK/$2-benthos.yaml ${3:-}"); }

if [ -z "${KAFKA_ONLY:-}" ]; then
four rate_run map "$N"; row "generate → JSON mapping (+uuid_v4, +bool) → drop" msg/s "${V[@]}"
four rate_run filter "$N"; row "generate → one-field filter → drop" msg/s "${V[@]}"
four rate_run ndjson "$N $WORK/in.ndjson"; row "NDJSON stdin → JSON mapping → stdout" msg/s "${V[@]}"
four wrk_run http; row "http_server → JSON mapping → sync_response (wrk -c100)" req/s "${V[@]}"
two wrk_run drop; row "http_server → drop (wrk -c100)" req/s "${V[@]}"
two startup_run start; row "startup: generate 1 → drop (hyperfine -N, wall)" ms "${V[@]}"
two rss_run drop; row "idle RSS (http_server → drop, serving)" KiB "${V[@]}"
fi

if [ -z "${SKIP_KAFKA:-}" ]; then
  mkdir -p "$WORK/kafka"
  scripts/kafka.sh start "$WORK/kafka" "$KPORT" > /dev/null
  B=127.0.0.1:$KPORT
  # the first consumer group creates __consumer_offsets: before any timed run
  echo warm | kcat -P -b "$B" -t warmup 2>/dev/null
  kcat -b "$B" -G warmup -X auto.offset.reset=earliest -e -q -c 1 warmup > /dev/null 2>&1
  K=0
  produce_run() { # SIDE: KN messages into a new topic (created before the clock starts), messages per second
    K=$((K + 1)); echo warm | kcat -P -b "$B" -t "p-$1-$K" 2>/dev/null
    if [ "$1" = sluice ]; then out="  kafka: {addresses: [$B], topic: p-$1-$K, metadata_headers: false}"
    else out="  kafka_franz: {seed_brokers: [$B], topic: p-$1-$K}"; fi
    config "$1" default "$(gen_in "$1" "$KN")" "" "$out" > "$WORK/kp.yaml"
    rate_run "$1" "$WORK/kp.yaml" "$KN"
  }
  # one topic of KN messages both consume, each in a group of its own, until
  # its /metrics counts them all
  yes "$MSG" | head -n "$KN" | kcat -P -b "$B" -t consume -X linger.ms=5 2>/dev/null
  consume_run() { # SIDE: messages per second
    K=$((K + 1))
    if [ "$1" = sluice ]; then in="  kafka: {addresses: [$B], topics: [consume], consumer_group: g$K, batching: {count: 1024, period: 100ms}, checkpoint_limit: 65536}"
    else in="  kafka_franz: {seed_brokers: [$B], topics: [consume], consumer_group: g$K, start_from_oldest: true}"; fi
    config "$1" default "$in" "" "  drop: {}" > "$WORK/kc.yaml"
    s=$(now); serve_side "$1" "$WORK/kc.yaml"
    wait_received "$(cat "$WORK/srv.pid")" "$PORT" "$KN" 2400 0.05 "$1 kafka → drop"
    e=$(now); stop_side
    [ "${got:-0}" -ge "$KN" ] || fail "$1 consumed ${got:-0} of $KN messages"
    echo "$KN $s $e" | awk '{printf "%d\n", $1 / ($3 - $2)}'
  }
  V=("sluice:default:produce_run sluice" "benthos:default:produce_run benthos")
  row "generate → Kafka ($KN messages)" msg/s "${V[@]}"
  V=("sluice:default:consume_run sluice" "benthos:default:consume_run benthos")
  row "Kafka → drop ($KN messages, consumer group)" msg/s "${V[@]}"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
