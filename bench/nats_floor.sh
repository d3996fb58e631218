#!/bin/bash
# Core NATS publish, CPU per message (user+sys, µs) of three publishers of N
# messages of SIZE bytes to the same nats-server in the same run:
#   sluice generate → nats output (bench/nats.sh's pipeline),
#   bench/nats_pub.c: cnats, the library sluice publishes with, in a bare
#   loop (natsConnection_Publish per message, sluice's 1 MiB buffer),
#   nats bench --pub 1 (Go, nats.go): bench/nats.sh's peer.
# The bare cnats loop is the floor of any cnats-based publisher: the row says
# how much of sluice's distance to nats bench is cnats's own.
# Usage: bench/nats_floor.sh   (N=1000000 SIZES="100 1024" RUNS=5)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-1000000}
SIZES=${SIZES:-100 1024}
RUNS=${RUNS:-5}
NPORT=${NPORT:-14323}
NATS=${NATS_CLI:-$(command -v nats || echo "$HOME/go/bin/nats")}
[ -x "$NATS" ] || fail "the nats CLI is missing (bench/nats.sh installs it)"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
cc -O2 -Wall -Wextra -Werror -o "$WORK/nats_pub" bench/nats_pub.c -lnats
nats-server -a 127.0.0.1 -p "$NPORT" -l "$WORK/server.log" &
U=nats://127.0.0.1:$NPORT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$NPORT) 2>/dev/null && break; sleep 0.05; done
# µs of CPU per message of "$@"
cpu() {
  /usr/bin/time -o "$WORK/cpu" -f "%U %S" "$@" > "$WORK/out" 2>&1 || fail "$* failed: $(tail -3 "$WORK/out")"
  awk -v n="$N" '{printf "%.3f\n", ($1 + $2) * 1e6 / n}' "$WORK/cpu"
}
echo "| size | sluice generate → nats | cnats bare loop | nats bench --pub | sluice / cnats | sluice / nats bench | cnats / nats bench |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for size in $SIZES; do
  cat > "$WORK/p.yaml" <<YAML
input: {generate: {count: $N, interval: 0, batch_size: 1024, mapping: 'return string.rep("x", $size)'}}
max_in_flight: 64
output: {nats: {urls: [$U], subject: bench.floor}}
YAML
  s=(); c=(); g=()
  for _ in $(seq "$RUNS"); do
    s+=("$(cpu "$BIN" run --log-level warn "$WORK/p.yaml")")
    c+=("$(cpu "$WORK/nats_pub" "$U" bench.floor "$N" "$size")")
    g+=("$(cpu "$NATS" -s "$U" bench --no-progress bench.floor --pub 1 --msgs "$N" --size "$size")")
  done
  a=$(printf '%s\n' "${s[@]}" | median); b=$(printf '%s\n' "${c[@]}" | median); d=$(printf '%s\n' "${g[@]}" | median)
  echo "| $size B | $a | $b | $d | $(echo "$a $b" | awk '{printf "%.2f", $1/$2}') | $(echo "$a $d" | awk '{printf "%.2f", $1/$2}') | $(echo "$b $d" | awk '{printf "%.2f", $1/$2}') |"
done
