#!/bin/bash
# Instructions per consumed message of `nats_jetstream → drop` (bench/nats.sh's
# consumer: a durable push consumer, explicit acks, max_ack_pending 1024,
# batch_count 256) under callgrind, for one or more sluice binaries, their runs
# one after the other: on a shared machine the CPU per message does not resolve a 5%
# change, instruction counts do. Each run drains a stream of N messages that
# nats bench filled, the whole process counted; per message is
# (Ir at N2 − Ir at N1) / (N2 − N1), so start-up and shutdown cancel out.
# callgrind runs one thread at a time: what one read brings (and so the costs
# paid once per read) differs from a live run, and the kernel is not counted.
# Usage: bench/nats_callgrind.sh BIN...   (N1=400000 N2=600000 SIZE=100 PULL=0 (1: a pull consumer);
# CG_OPTS: more valgrind options (--separate-threads=yes writes a file per
# thread, OUT keeps them, and prints no total);
# OUT=DIR keeps the callgrind files, BIN's index and N in their names)
# Prints "BIN N1-instructions N2-instructions per-message" a line.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
N1=${N1:-400000} N2=${N2:-600000} SIZE=${SIZE:-100}
NPORT=${NPORT:-24391}
NATS=${NATS_CLI:-$(command -v nats || echo "$HOME/go/bin/nats")}
WORK=$(mktemp -d)
OUT=${OUT:-$WORK}
mkdir -p "$OUT"
pid=
trap 'kill $pid 2>/dev/null || true; kill $srv 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
nats-server -js -sd "$WORK/js" -a 127.0.0.1 -p "$NPORT" -l "$WORK/server.log" & srv=$!
U=nats://127.0.0.1:$NPORT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$NPORT) 2>/dev/null && break; sleep 0.05; done

# Ir of BIN draining a stream of $2 messages
run() {
  local bin=$1 n=$2 out=$3
  "$NATS" -s "$U" bench --no-progress bench.cg --js --purge --maxbytes 4GB --pub 1 --msgs "$n" --size "$SIZE" \
    --pubbatch 1024 > "$WORK/fill.out" 2>&1 || fail "nats bench: $(tail -3 "$WORK/fill.out")"
  local pull="" durable=cg$RANDOM$RANDOM
  [ "${PULL:-0}" = 1 ] && pull=", pull: true"
  cat > "$WORK/c.yaml" <<YAML
input: {nats_jetstream: {urls: [$U], subject: bench.cg, durable: $durable, max_ack_pending: 1024, batch_count: 256$pull}}
max_in_flight: 64
output: {drop: {}}
YAML
  valgrind --tool=callgrind ${CG_OPTS:-} --callgrind-out-file="$out" "$bin" run --log-level warn "$WORK/c.yaml" \
    2> "$WORK/valgrind.err" & pid=$!
  # drained: asked of the server (polling sluice's /metrics would count too)
  local drained=0
  for _ in $(seq 1200); do
    kill -0 $pid 2>/dev/null || fail "sluice exited under callgrind: $(tail -3 "$WORK/valgrind.err")"
    "$NATS" -s "$U" consumer info benchstream "$durable" -j 2>/dev/null |
      python3 -c 'import json, sys; c = json.load(sys.stdin); sys.exit(not (c["num_pending"] == 0 and c["num_ack_pending"] == 0 and c["delivered"]["stream_seq"] >= int(sys.argv[1])))' "$n" 2>/dev/null && drained=1 && break
    sleep 0.5
  done
  [ $drained = 1 ] || fail "not drained in 10 minutes under callgrind"
  kill -TERM $pid
  wait $pid || true
  pid=
  local total
  total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  figure "$total" "callgrind's total"
  echo "$total"
}

i=0
for bin in "$@"; do
  i=$((i + 1))
  a=$(run "$bin" "$N1" "$OUT/cg.$i.$N1")
  b=$(run "$bin" "$N2" "$OUT/cg.$i.$N2")
  figure "$a" "$bin at $N1"
  figure "$b" "$bin at $N2"
  echo "$bin $a $b $(echo "$a $b $N1 $N2" | awk '{printf "%d", ($2 - $1) / ($4 - $3)}')"
done
