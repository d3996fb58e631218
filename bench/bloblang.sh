#!/bin/sh
# The seed's three Bloblang mappings (Tyk Streams' demo, 000) run three ways
# on the same generated messages, interleaved RUNS times: sluice's `mapping`
# (translated to Lua), the same written by hand as `lua`, and Benthos running
# the original Bloblang. Prints msg/s medians (by wall clock and by CPU
# time) and the ratios.
# Usage: bench/bloblang.sh [BENTHOS_BIN]  (N=500000 RUNS=5; without a Benthos
# binary it is built from its public source, as PEERS.md says, into
# ~/.cache/sluice-bench/benthos)
set -eu
. "$(dirname "$0")/lib.sh"
BIN=${BIN:-build/sluice} N=${N:-500000} RUNS=${RUNS:-5}
benthos=${1:-$HOME/.cache/sluice-bench/benthos/benthos}
[ -n "${1:-}" ] || benthos_build "$(dirname "$benthos")" pure
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
gen='    count: '$N'
    interval: 0
    batch_size: 1024'
# name | sluice processor | Benthos processor
write() { # $1 name, $2 sluice processor YAML, $3 Benthos processor YAML
  printf 'input:\n  generate:\n%s\n    mapping: %s\npipeline:\n  processors:\n%s\noutput: {drop: {}}\n' \
    "$gen" "'return {message = \"hello world\", user_id = \"alice\", n = i}'" "$2" > "$work/$1.sluice.yaml"
  printf 'input:\n  generate:\n    count: %s\n    interval: ""\n    batch_size: 1024\n    mapping: %s\npipeline:\n  processors:\n%s\noutput: {drop: {}}\nlogger: {level: none}\nmetrics: {none: {}}\n' \
    "$N" "'root = {\"message\": \"hello world\", \"user_id\": \"alice\", \"n\": count(\"c\")}'" "$3" > "$work/$1.benthos.yaml"
}
IN='    - mapping: |
        root = this
        root.user_id = "alice"
        root.job_id = uuid_v4()'
WORKER='    - mapping: |
        root = this.merge({ "result": "bar" })'
OUT='    - mapping: |
        root = if this.user_id != "alice" {
          deleted()
        }'
write in "$IN" "$IN"; write worker "$WORKER" "$WORKER"; write out "$OUT" "$OUT"
write in_lua '    - lua: |
        this.user_id = "alice"
        this.job_id = uuid_v4()' "$IN"
write worker_lua "    - lua: 'this.result = \"bar\"'" "$WORKER"
write out_lua "    - lua: 'if this.user_id ~= \"alice\" then return deleted() end'" "$OUT"
# msg/s by wall clock and by CPU time (user+sys: the machine is shared, and
# other work there slows the wall clock far more than it does the CPU time).
rate() { # $1 command... → "wall-msg/s cpu-msg/s"
  s=$(date +%s%N); /usr/bin/time -f "%U %S" -o "$work/cpu" "$@" >/dev/null 2>&1 || fail "$* failed"; e=$(date +%s%N)
  echo "$N $s $e $(cat "$work/cpu")" | awk '{printf "%.0f %.0f\n", $1 / (($3 - $2) / 1e9), $1 / ($4 + $5)}'
}
for m in in worker out; do
  for _ in $(seq "$RUNS"); do
    echo "t $(rate "$BIN" run --log-level warn "$work/$m.sluice.yaml")" >> "$work/$m.runs"
    echo "l $(rate "$BIN" run --log-level warn "$work/${m}_lua.sluice.yaml")" >> "$work/$m.runs"
    echo "b $(rate "$benthos" -c "$work/$m.benthos.yaml")" >> "$work/$m.runs"
  done
  for c in 2 3; do
    t=$(awk -v c=$c '$1=="t"{print $c}' "$work/$m.runs" | median)
    l=$(awk -v c=$c '$1=="l"{print $c}' "$work/$m.runs" | median)
    b=$(awk -v c=$c '$1=="b"{print $c}' "$work/$m.runs" | median)
    by=$([ $c = 2 ] && echo "wall clock" || echo "CPU time")
    echo "$m by $by: translated $t msg/s, hand-written Lua $l msg/s, Benthos $b msg/s; translated/Lua $(echo "$t $l" | awk '{printf "%.2f", $1/$2}'), translated/Benthos $(echo "$t $b" | awk '{printf "%.2f", $1/$2}')"
  done
done
