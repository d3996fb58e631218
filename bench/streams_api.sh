#!/bin/bash
# The event loop while the streams API takes bodies of its maximum size
# (http.streams_api_max_body, 256KiB by default): for each shape of body,
# GET /ping is sent one after the other while POST /streams/x is outstanding
# (spec/tools/ping_during.py), and the slowest ping is printed with the
# POST's answer and duration. Bodies are parsed and checked off the loop;
# a valid one is then built on the loop, which costs per component.
# Usage: bench/streams_api.sh [MAX_BODY_BYTES]
set -eu
cd "$(dirname "$0")/.."
MAX=${1:-262144}
BIN=${SLUICE_BIN:-build/sluice}
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
printf 'http:\n  address: 127.0.0.1:%s\n  streams_api_max_body: %s\n' "$PORT" "$MAX" > "$WORK/c.yaml"
python3 - "$WORK" "$MAX" <<'PY'
import sys
work, cap = sys.argv[1], int(sys.argv[2])
head = "input: {generate: {count: 1, mapping: 'return 1'}}\noutput: {drop: {}}\n"
def fill(name, start, unit, end=""):
    s, i = start, 0
    while len(s) + len(unit(i)) + len(end) < cap:
        s += unit(i); i += 1
    open(f"{work}/{name}.yaml", "w").write(s + end)
fill("unknown_keys", head, lambda i: f"key_{i}: {i}\n")
fill("flat_list", head + "x: [", lambda i: "1,", "1]\n")
lines = [head + "x:", "  a0: &a0 [x, x, x, x, x, x, x]"]
for i in range(1, 6):
    lines.append("  a%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * 10)))
open(f"{work}/aliases_900k_nodes.yaml", "w").write("\n".join(lines) + "\n")
fill("lua_script", "input: {generate: {count: 1, mapping: 'return 1'}}\npipeline:\n  processors:\n    - lua: |\n" +
     "        local t = {}\n", lambda i: f"        t[{i}] = {i}\n", "output: {drop: {}}\n")
# POST /streams: streams of 1000 lua processors (a stream holds at most 1024)
stream = lambda k: (f"s{k}:\n  input: {{generate: {{count: 1, mapping: 'return 1'}}}}\n  output: {{drop: {{}}}}\n"
                    "  pipeline:\n    processors:\n")
fill("lua_processors", "", lambda i: (stream(i // 1000) if i % 1000 == 0 else "") + f"      - lua: 'this.x = {i}'\n")
PY
"$BIN" streams --log-level warn "$WORK/c.yaml" & pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$PORT/ping" && break; sleep 0.05; done
echo "| body ($MAX bytes at most) | answer | POST took | pings meanwhile | slowest ping |"
echo "| --- | --- | --- | --- | --- |"
for b in unknown_keys flat_list aliases_900k_nodes lua_script lua_processors; do
  curl -s -o /dev/null -X DELETE "127.0.0.1:$PORT/streams/x"
  path=/streams/x
  [ $b = lua_processors ] && path=/streams
  start=$(date +%s%N)
  out=$(python3 spec/tools/ping_during.py "$PORT" POST $path "$WORK/$b.yaml")
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "$out" | python3 -c "
import json, sys
r = json.load(sys.stdin)
print('| %s (%d bytes) | %d | %d ms | %d | %.1f ms |' % ('$b', $(stat -c %s "$WORK/$b.yaml"), r['status'], $ms, r['pings'], r['slowest_ping_ms']))"
done
kill $pid; wait $pid 2>/dev/null || true
