#!/bin/sh
# Enrichment benchmark of issue 15: `generate → lua (http.request to nginx
# returning a small JSON, the answer merged into the message) → drop`,
# beside wrk driving the same nginx directly with as many connections as the
# lua processor's max_concurrency (the ceiling: what the upstream serves), and
# beside Benthos's enrichment idiom (`branch` around its `http` processor with
# `parallel: true` on batches of 64, the answer merged under `profile`), all in
# the same run. nginx runs one worker. Prints a Markdown table, with each
# client's CPU per request (user + system, /usr/bin/time): on a loaded machine
# the rates swing with the load, the CPU per request much less.
# Env: N (messages, default 200000), NB (Benthos's messages, default N/5: it
# is slower), CONC (default 64), DURATION (wrk, 10s), RUNS (3), BENTHOS (a
# binary with the io components; built into ~/.cache/sluice-bench/benthos-io
# when unset).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-200000}
CONC=${CONC:-64}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
NB=${NB:-$((N / 5))}
BENTHOS=${BENTHOS:-$HOME/.cache/sluice-bench/benthos-io/benthos}
[ -x "$BENTHOS" ] || benthos_build "$(dirname "$BENTHOS")" pure io
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
PORT=${PORT:-18090}

cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx.pid.run;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK; uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$PORT;
    location = /json { default_type application/json; return 200 '{"region":"eu-west","tier":"gold"}'; }
  }
}
NGINX

cat > "$WORK/enrich.yaml" <<YAML
max_in_flight: 256
input:
  generate: {count: $N, interval: 0, batch_size: 64, mapping: 'return {id = i, user = "u" .. (i % 1000)}'}
pipeline:
  processors:
    - lua:
        max_concurrency: $CONC
        code: |
          local r, err = http.request{url = "http://127.0.0.1:$PORT/json"}
          if not r then error(err) end
          this.profile = json.decode(r.body)
output: {drop: {}}
YAML

cat > "$WORK/benthos.yaml" <<YAML
logger: {level: WARN}
http: {enabled: false}
input:
  generate: {count: $NB, interval: "", batch_size: 64, mapping: 'root = {"id": count("c"), "user": "u" + (count("u") % 1000).string()}'}
pipeline:
  processors:
    - branch:
        request_map: 'root = ""'
        processors:
          - http: {url: "http://127.0.0.1:$PORT/json", verb: GET, parallel: true}
        result_map: 'root.profile = this'
output: {drop: {}}
YAML

nginx -p "$WORK" -c "$WORK/nginx.conf" > "$WORK/nginx.log" 2>&1 &
echo $! > "$WORK/nginx.pid"
wait_http "http://127.0.0.1:$PORT/json" "$(cat "$WORK/nginx.pid")"

# cpu_us FILE REQUESTS: microseconds of CPU (user + system) per request from
# /usr/bin/time's "%U %S" in FILE.
cpu_us() { awk -v n="$2" '{printf "%.1f\n", ($1 + $2) * 1e6 / n}' "$1"; }
timed() { out=$1; shift; /usr/bin/time -f "%U %S" -o "$out" "$@"; }
for _ in $(seq "$RUNS"); do
  timed "$WORK/wrk.cpu" wrk -t1 -c"$CONC" -d"$DURATION" "http://127.0.0.1:$PORT/json" > "$WORK/wrk.out"
  wrk_check "$WORK/wrk.out"
  echo "$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.out") $(cpu_us "$WORK/wrk.cpu" "$(awk '/requests in/ {print $1}' "$WORK/wrk.out")")"
done > "$WORK/wrk.runs"
for _ in $(seq "$RUNS"); do
  t0=$(date +%s.%N)
  timed "$WORK/sluice.cpu" "$BIN" run --log-level warn "$WORK/enrich.yaml" > "$WORK/sluice.log" 2>&1 ||
    fail "sluice failed: $(cat "$WORK/sluice.log")"
  t1=$(date +%s.%N)
  grep -q "script failed" "$WORK/sluice.log" && fail "calls failed: $(head -3 "$WORK/sluice.log")"
  echo "$(echo "$N $t0 $t1" | awk '{printf "%.0f", $1 / ($3 - $2)}') $(cpu_us "$WORK/sluice.cpu" "$N")"
done > "$WORK/sluice.runs"
for _ in $(seq "$RUNS"); do
  t0=$(now)
  timed "$WORK/benthos.cpu" "$BENTHOS" -c "$WORK/benthos.yaml" > "$WORK/benthos.log" 2>&1 ||
    fail "Benthos failed: $(tail -3 "$WORK/benthos.log")"
  t1=$(now)
  echo "$(echo "$NB $t0 $t1" | awk '{printf "%.0f", $1 / ($3 - $2)}') $(cpu_us "$WORK/benthos.cpu" "$NB")"
done > "$WORK/benthos.runs"
col() { awk -v c="$1" '{print $c}' "$2" | median; }
w=$(col 1 "$WORK/wrk.runs"); s=$(col 1 "$WORK/sluice.runs"); b=$(col 1 "$WORK/benthos.runs")
wc=$(col 2 "$WORK/wrk.runs"); sc=$(col 2 "$WORK/sluice.runs"); bc=$(col 2 "$WORK/benthos.runs")
figure "$w" "wrk requests/s"; figure "$s" "sluice requests/s"; figure "$b" "Benthos requests/s"

ratio() { echo "$1 $2" | awk '{printf "%.2f", $1/$2}'; }
echo "| benchmark | requests/s | ratio to the ceiling | sluice / this | client CPU µs/request |"
echo "| --- | --- | --- | --- | --- |"
echo "| wrk -t1 -c$CONC → nginx /json (the ceiling) | $w | 1 | $(ratio "$s" "$w") | $wc |"
echo "| sluice generate → lua http.request (max_concurrency $CONC) + json.decode → drop, $N messages | $s | $(ratio "$s" "$w") | 1 | $sc |"
echo "| Benthos v4.27.0 generate (batches of 64) → branch{http parallel} → drop, $NB messages | $b | $(ratio "$b" "$w") | $(ratio "$s" "$b") | $bc |"
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
