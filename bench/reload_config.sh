#!/bin/bash
# Config reload: (1) latency from POST /admin/reload to the new stream
# serving (median of N), (2) http_server -> drop throughput under wrk with
# no reloads, with 10 reloads/s of another stream and with 10 reloads/s of the
# very stream behind the path, in the same run; failures counted.
# Usage: bench/reload_config.sh [N] (DURATION=10s)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-30}
DURATION=${DURATION:-10s}
BIN=${SLUICE_BIN:-build/sluice}
PORT=18191
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
URL=http://127.0.0.1:$PORT

# $1: tag returned by `tagged`, $2: interval of `ticker`, $3: timeout of `web`
config() {
  cat > "$WORK/c.yaml.tmp" <<YAML
http: {address: 127.0.0.1:$PORT}
logger: {level: warn}
streams:
  web:
    input: {http_server: {path: /in, timeout: $3}}
    output: {drop: {}}
  tagged:
    input: {http_server: {path: /tag}}
    pipeline:
      processors:
        - lua: 'return "$1"'
    output: {sync_response: {}}
  ticker:
    input: {generate: {mapping: 'return "t"', interval: $2}}
    output: {drop: {}}
YAML
  mv "$WORK/c.yaml.tmp" "$WORK/c.yaml"
}

config v0 1s 5s
"$BIN" run "$WORK/c.yaml" & pid=$!
wait_http "$URL/ping" $pid

# (1) latency: POST /admin/reload, then the first request answered by the new version.
python3 - "$URL" "$N" "$WORK" <<'PY'
import sys, time, urllib.request, statistics, os
url, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
src = open(work + "/c.yaml").read()
lat_reply, lat_serve = [], []
for i in range(1, n + 1):
    tag = "v%d" % i
    with open(work + "/c.yaml.tmp", "w") as f:
        f.write(src.replace("return \"v0\"", "return \"%s\"" % tag))
    os.rename(work + "/c.yaml.tmp", work + "/c.yaml")
    t0 = time.perf_counter()
    urllib.request.urlopen(urllib.request.Request(url + "/admin/reload", method="POST")).read()
    t1 = time.perf_counter()
    while True:
        body = urllib.request.urlopen(urllib.request.Request(url + "/tag", data=b"x")).read().decode()
        if body == tag:
            break
    t2 = time.perf_counter()
    lat_reply.append((t1 - t0) * 1000)
    lat_serve.append((t2 - t0) * 1000)
print("| reload latency, %d reloads | POST /admin/reload answered: median %.2f ms (p90 %.2f) | new stream serving: median %.2f ms (p90 %.2f) |"
      % (n, statistics.median(lat_reply), sorted(lat_reply)[int(n * .9) - 1],
         statistics.median(lat_serve), sorted(lat_serve)[int(n * .9) - 1]))
PY

printf 'wrk.method = "POST"\nwrk.body = "{}"\n' > "$WORK/post.lua"
# $1: which stream the reloads change (none|ticker|web); prints "req/s failures"
load() {
  local stop="$WORK/stop" rl=""
  rm -f "$stop"
  if [ "$1" != none ]; then
    (i=0; while [ ! -e "$stop" ]; do
       i=$((i + 1))
       if [ "$1" = ticker ]; then config v0 "$((1000 + i % 2))ms" 5s; else config v0 1s "$((5 + i % 2))s"; fi
       curl -s -o /dev/null -X POST "$URL/admin/reload"
       sleep 0.1
     done) & rl=$!
  fi
  wrk -t2 -c32 -d"$DURATION" -s "$WORK/post.lua" "$URL/in" > "$WORK/wrk.txt"
  touch "$stop"
  [ -n "$rl" ] && wait $rl
  local fails
  fails=$(grep -E 'Non-2xx|Socket errors' "$WORK/wrk.txt" | tr -s ' \n' ' ' || true)
  echo "$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt") ${fails:-0}"
}
load none > /dev/null   # warm-up
declare -A all
RUNS=${RUNS:-3}
for _ in $(seq "$RUNS"); do
  for kind in none ticker web; do
    r=$(load $kind)
    all[$kind]="${all[$kind]:-} ${r%% *}"
    [ "${r#* }" = 0 ] || echo "failures with $kind: ${r#* }"
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
base=$(echo "${all[none]}" | median)
for kind in none ticker web; do
  m=$(echo "${all[$kind]}" | median)
  figure "$m" "http_server -> drop with $kind reloads"
  case $kind in none) label="no reloads";; ticker) label="10 reloads/s of another stream";;
    web) label="10 reloads/s of the stream behind the path";; esac
  echo "| http_server -> drop, $label | median of $RUNS: $m req/s (runs:${all[$kind]}) | ratio $(python3 -c "print('%.2f' % ($m / $base))") |"
done
echo "config version after the run: $(curl -s "$URL/admin/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["version"])'); failed requests: none unless listed above"
kill $pid; wait $pid 2>/dev/null || true
