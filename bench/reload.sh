#!/bin/sh
# Lua module hot reload: (1) latency from writing the module file to the first
# message processed by the new version, median of RELOADS; (2) generate → lua
# → drop throughput with and without 10 reloads per second, alternating
# PHASE-second phases in one run (ratio of the medians, and the median of the
# ratios of each reloading phase to the quiet phase before it), per wall
# second and per CPU second of sluice. Prints Markdown rows for bench/RESULTS.md.
# Env: RELOADS (default 20), PHASES (per kind, default 8), PHASE (seconds, default 2).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=$(realpath "${SLUICE_BIN:-build/sluice}")
RELOADS=${RELOADS:-20}
PHASES=${PHASES:-8}
PHASE=${PHASE:-2}
WORK=$(mktemp -d /tmp/sluice-reload.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM


# A module tagging each message with its version ($1).
module() {
  cat <<LUA
local M = {}
local TAG = "$1"
function M.process(msg)
  msg:set_content(msg:content() .. " " .. TAG)
  return msg
end
return M
LUA
}

# Writes version $1 of the module: beside it, then renamed over it (atomic).
write_version() {
  module "$1" > "$WORK/mod.lua.tmp"
  mv "$WORK/mod.lua.tmp" "$WORK/mod.lua"
}


# ---- (1) latency: each message carries its generation time (µs); the first
# line tagged with version k gives when version k first ran.
latency() {
  module 1 > "$WORK/mod.lua"
  cat > "$WORK/lat.yaml" <<YAML
input:
  generate: {interval: 1ms, mapping: 'return now()'}
pipeline:
  processors:
    - lua: {file: mod.lua}
output:
  file: {path: out.txt}
YAML
  (cd "$WORK" && exec "$BIN" run --log-level warn lat.yaml) &
  PID=$!
  sleep 1
  : > "$WORK/writes.txt"
  for k in $(seq 2 $((RELOADS + 1))); do
    echo "$k $(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)" >> "$WORK/writes.txt"
    write_version "$k"
    sleep 0.3
  done
  kill "$PID"; wait "$PID" || true; PID=
  python3 - "$WORK/writes.txt" "$WORK/out.txt" <<'PY'
import sys, datetime, statistics
ts = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
written = {k: ts(t) for k, t in (l.split() for l in open(sys.argv[1]))}
first = {}
for l in open(sys.argv[2]):
    t, tag = l.split()
    first.setdefault(tag, ts(t))
lat = sorted((first[k] - w) * 1000 for k, w in written.items() if k in first)
missing = [k for k in written if k not in first]
print("latency_ms median=%.1f min=%.1f max=%.1f n=%d missing=%s" % (
    statistics.median(lat), lat[0], lat[-1], len(lat), ",".join(missing) or "none"))
PY
}

# ---- (2) throughput: output_sent sampled from /metrics at phase boundaries,
# per wall second and per second of sluice's own CPU time (utime + stime):
# on a shared machine the second is the steadier measure of what reloads cost.
sent() {
  curl -s -m 5 "http://127.0.0.1:$1/metrics" | awk '/^output_sent[{ ]/ {print $NF}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
mark() { echo "$(sent "$1") $(date +%s%N) $(cpu_ticks)"; }
# "msgs/wall-s msgs/cpu-s" between two marks
rates() {
  echo "$1 $2" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f %.0f\n", ($4 - $1) / (($5 - $2) / 1e9), ($4 - $1) / (($6 - $3) / hz)}'
}

throughput() {
  port=$((20000 + $$ % 10000))
  module 1 > "$WORK/mod.lua"
  cat > "$WORK/tp.yaml" <<YAML
http: {address: 127.0.0.1:$port}
input:
  generate: {interval: 0, batch_size: 64, mapping: 'return "x"'}
pipeline:
  processors:
    - lua: {file: mod.lua}
output:
  drop: {}
YAML
  (cd "$WORK" && exec "$BIN" run --log-level warn tp.yaml) &
  PID=$!
  wait_http "http://127.0.0.1:$port/ping" "$PID"
  sleep 1
  v=1
  : > "$WORK/quiet.txt"; : > "$WORK/reloading.txt"
  for _ in $(seq "$PHASES"); do
    a=$(mark "$port"); sleep "$PHASE"; b=$(mark "$port")
    rates "$a" "$b" >> "$WORK/quiet.txt"
    a=$(mark "$port")
    for _ in $(seq $((PHASE * 10))); do
      v=$((v + 1)); write_version "$v"; sleep 0.1
    done
    b=$(mark "$port")
    rates "$a" "$b" >> "$WORK/reloading.txt"
  done
  reloads=$(curl -s -m 5 "http://127.0.0.1:$port/metrics" | awk '/^sluice_lua_reloads_total/ {print $NF}')
  [ "${reloads:-0}" -gt 0 ] || fail "no reload was counted"
  kill "$PID"; wait "$PID" || true; PID=
  echo "quiet (msg/s msg/cpu-s): $(tr '\n' ',' < "$WORK/quiet.txt")"
  echo "reloading (msg/s msg/cpu-s): $(tr '\n' ',' < "$WORK/reloading.txt")"
  echo "versions written: $((v - 1)), reloads counted: $reloads"
  for col in 1 2; do
    q=$(cut -d' ' -f$col "$WORK/quiet.txt" | median); r=$(cut -d' ' -f$col "$WORK/reloading.txt" | median)
    # each reloading phase against the quiet phase just before it
    p=$(paste -d' ' "$WORK/reloading.txt" "$WORK/quiet.txt" | awk -v c=$col '{printf "%.2f\n", $c / $(c + 2)}' | median)
    unit=$([ $col = 1 ] && echo "msg/s" || echo "msg per CPU-s")
    echo "| generate → lua (module) → drop, $unit | $q | $r | $(echo "$r $q" | awk '{printf "%.2f", $1 / $2}') | $p |"
  done
}

case ${1:-all} in
  latency) latency ;;
  throughput) throughput ;;
  all) latency; throughput ;;
esac
