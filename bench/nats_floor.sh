#!/bin/bash
# NATS publish, CPU per message (user+sys, µs) of three publishers of N
# messages of SIZE bytes to the same nats-server in the same run:
#   sluice generate → nats / nats_jetstream output (bench/nats.sh's pipeline),
#   bench/nats_pub.c: cnats, the library sluice publishes with, in a bare
#   loop (core: natsConnection_Publish per message, sluice's 1 MiB buffer;
#   JetStream: js_PublishAsync with sluice's window of 1024 PubAcks),
#   nats bench --pub 1 (Go, nats.go; JetStream: --js --pubbatch 1024):
#   bench/nats.sh's peer.
# CPU is the whole process's, exec to exit, connecting included, as
# bench/nats.sh measures it; nats bench's own moves 2-3x with the machine's
# load (lower when loaded): compare within one run only.
# The bare cnats loop is the floor of any cnats-based publisher: the row says
# how much of sluice's distance to nats bench is cnats's own. BASE=<binary>
# adds a second sluice (e.g. main's build) measured in the same runs.
# JetStream rows publish JS_N messages to nats bench's stream (purged
# before each publisher); a sluice run that left fewer stored fails the bench.
# Usage: bench/nats_floor.sh   (N=1000000 JS_N=200000 SIZES="100 1024" KINDS="nats nats_jetstream" RUNS=5)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-1000000}
JS_N=${JS_N:-200000}
BASE=${BASE:-}
KINDS=${KINDS:-nats nats_jetstream}
SIZES=${SIZES:-100 1024}
RUNS=${RUNS:-5}
NPORT=${NPORT:-14323}
NATS=${NATS_CLI:-$(command -v nats || echo "$HOME/go/bin/nats")}
[ -x "$NATS" ] || fail "the nats CLI is missing (bench/nats.sh installs it)"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
cc -O2 -Wall -Wextra -Werror -o "$WORK/nats_pub" bench/nats_pub.c -lnats
nats-server -js -sd "$WORK/js" -a 127.0.0.1 -p "$NPORT" -l "$WORK/server.log" &
U=nats://127.0.0.1:$NPORT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$NPORT) 2>/dev/null && break; sleep 0.05; done
# µs of CPU per message of "$@" ($n messages)
cpu() {
  /usr/bin/time -o "$WORK/cpu" -f "%U %S" "$@" > "$WORK/out" 2>&1 || fail "$* failed: $(tail -3 "$WORK/out")"
  awk -v n="$n" '{printf "%.3f\n", ($1 + $2) * 1e6 / n}' "$WORK/cpu"
}
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1/$2}'; }
# the stream every JetStream publisher writes to, emptied before each one
purge() { [ "$kind" = nats ] || "$NATS" -s "$U" stream purge benchstream -f > /dev/null; }
# a JetStream publisher that exited 0 stored every message
stored() {
  [ "$kind" = nats ] && return
  local m
  m=$("$NATS" -s "$U" stream info benchstream -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])')
  [ "$m" -ge "$n" ] || fail "$1: $m of $n messages stored"
}
bh="" bc=""
[ -z "$BASE" ] || bh=" BASE sluice |"
echo "| kind | size | messages | sluice generate → output |$bh cnats bare loop | nats bench --pub | sluice / cnats | sluice / nats bench | cnats / nats bench |"
echo "| --- | --- | --- | --- |${BASE:+ --- |} --- | --- | --- | --- | --- |"
for kind in $KINDS; do
  n=$N subject=bench.floor extra="" js=() pj=()
  if [ "$kind" = nats_jetstream ]; then
    n=$JS_N subject=bench.floorjs extra=", max_in_flight: 1024" js=(js 1024) pj=(--js --maxbytes 4GB --pubbatch 1024)
    "$NATS" -s "$U" bench --no-progress $subject --js --purge --maxbytes 4GB --pub 1 --msgs 1 --size 16 > /dev/null 2>&1
  fi
  for size in $SIZES; do
    cat > "$WORK/p.yaml" <<YAML
input: {generate: {count: $n, interval: 0, batch_size: 1024, mapping: 'return string.rep("x", $size)'}}
max_in_flight: 64
output: {$kind: {urls: [$U], subject: $subject$extra}}
YAML
    s=(); o=(); c=(); g=()
    for _ in $(seq "$RUNS"); do
      purge; s+=("$(cpu "$BIN" run --log-level warn "$WORK/p.yaml")"); stored sluice
      if [ -n "$BASE" ]; then purge; o+=("$(cpu "$BASE" run --log-level warn "$WORK/p.yaml")"); stored BASE; fi
      purge; c+=("$(cpu "$WORK/nats_pub" "$U" $subject "$n" "$size" "${js[@]}")")
      purge; g+=("$(cpu "$NATS" -s "$U" bench --no-progress $subject "${pj[@]}" --pub 1 --msgs "$n" --size "$size")")
    done
    a=$(printf '%s\n' "${s[@]}" | median); b=$(printf '%s\n' "${c[@]}" | median); d=$(printf '%s\n' "${g[@]}" | median)
    [ -z "$BASE" ] || bc=" $(printf '%s\n' "${o[@]}" | median) |"
    echo "| $kind | $size B | $n | $a |$bc $b | $d | $(ratio "$a" "$b") | $(ratio "$a" "$d") | $(ratio "$b" "$d") |"
  done
done
