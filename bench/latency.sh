#!/bin/bash
# Broadcast latency: generate every INTERVAL ({t = now(), i = i}) → http_server
# output (SSE, or WebSocket with PROTO=ws) → N clients spread over CLIENTS node
# processes (bench/latency.js); delay = receive time − t (µs resolution on
# both sides), merged over every event sent in the SECS window and received by
# any process. Each N runs RUNS times, each with a fresh sluice; the table row
# is the median of the runs, column by column. Per-run details go to stderr.
#
# Usage: bench/latency.sh [N...]   (default: 100 1000)
#   PROTO=sse|ws (sse)   CLIENTS=client processes (4; at most N)
#   SECS=measured window (10)   RUNS=3   INTERVAL=generate interval (1ms)
#   BATCH=messages per tick (1): events a loop turn broadcasts together
#   PIN=1 (default, with 2+ CPUs): sluice on CPU 0, the clients on the others
#   (taskset), so that they never take sluice's core; PIN=0: no pinning.
#   WSLIB=npm: WebSocket clients use the npm `ws` package (spec/node) instead
#   of bench/latency.js's raw client.
#   CLIENT=c: the client processes are bench/fanclient.c (one epoll loop in
#   C, built here with cc; the same protocol and report) instead of node:
#   a client that costs ~1 µs of CPU per event, so that the delays measured
#   are sluice's rather than those of clients starved of CPU.
#   CLIENT_SCHED=batch (with CLIENT=c): the clients run SCHED_BATCH (chrt -b),
#   so that a client woken by an event never preempts the sluice thread
#   that is still writing that event to the other clients (clients on other
#   machines never do); without it sluice's writers were switched out
#   involuntarily 5,000-8,700 times a second at 200k deliveries/s.
#   SOURCE=store: generate → `stream` output, clients read /stream/lat/sse|ws/s
#   live (the store's own fan-out) instead of an http_server output.
#   HOLD=seconds (0): sluice drops what it generates for this long after it
#   starts, so that the clients connect before the broadcast begins (at a
#   1 ms interval, clients busy taking events connect slowly); the window
#   starts once both are done.
#   PERF=1: sluice's CPU time in the window from perf stat -p (task-clock,
#   user and kernel), reported per event received: what a delivery costs,
#   the figure that depends least on whatever else the machine runs.
#   QUIET=20: before each run, wait (up to 120 s) until the machine is under
#   20% busy over a second (it is shared); QUIET=0 skips the wait.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${SLUICE_BIN:-build/sluice}
PORT=${PORT:-18091}
PROTO=${PROTO:-sse}
CLIENTS=${CLIENTS:-4}
SECS=${SECS:-10}
RUNS=${RUNS:-3}
PIN=${PIN:-1}
INTERVAL=${INTERVAL:-1ms}
QUIET=${QUIET:-20}
SOURCE=${SOURCE:-output}
HOLD=${HOLD:-0}
case $PROTO in
  sse) route=sse_path; url=http://127.0.0.1:$PORT/sse;;
  ws) route=ws_path; url=ws://127.0.0.1:$PORT/ws;;
  *) echo "PROTO must be sse or ws" >&2; exit 2;;
esac
# SOURCE=store: the same events appended to a durable stream and read live
# through the store's own /stream/{name}/sse|ws/{subscriber} (from its end).
if [ "$SOURCE" = store ]; then
  url=${url%/*}/stream/lat/$PROTO/s?from_offset=999999999999\&offset_reset=latest
fi
ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
case ${CLIENT:-node} in
  node) client=(node bench/latency.js);;
  c) cc -O2 -Wall -Wextra -Werror -o "$WORK/fanclient" bench/fanclient.c || fail "cannot build bench/fanclient.c"
     client=("$WORK/fanclient")
     [ "${CLIENT_SCHED:-}" = batch ] && client=(chrt -b 0 "$WORK/fanclient");;
  *) fail "CLIENT must be node or c";;
esac
if [ "$SOURCE" = store ]; then
  out="{stream: {name: lat}}"
  store="store: {data_dir: $WORK/data}"
else
  out="{http_server: {path: \"\", $route: /$PROTO, replay_bytes: 0}}"
  store=""
fi
cat > "$WORK/c.yaml" <<YAML
http: {address: 127.0.0.1:$PORT, max_connections: 100000, idle_timeout: 1h}
$store
input: {generate: {interval: $INTERVAL, batch_size: ${BATCH:-1}, mapping: 'if time.now_ms() < tonumber(env("BENCH_HOLD_UNTIL") or 0) then return deleted() end return {t = now(), i = i}'}}
output: $out
YAML
ncpu=$(nproc)
if [ "$PIN" = 1 ] && [ "$ncpu" -ge 2 ]; then
  spin="taskset -c 0"; cpin="taskset -c 1-$((ncpu - 1))"
else
  spin=""; cpin=""
fi
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }   # utime + stime
# Busy ticks of CPU 0 and of the other CPUs (everything but idle and iowait).
cpus() { awk '/^cpu[0-9]/ {b = $2 + $3 + $4 + $7 + $8 + $9; if ($1 == "cpu0") c0 += b; else c1 += b} END {print c0, c1}' /proc/stat; }
busy_pct() {   # whole machine, over one second
  local a b
  a=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
  echo "$a $b" | awk '{print int(100 * ($3 - $1) / ($4 - $2 + 1e-9))}'
}
# ns runnable but not running, summed over the threads (HTTP workers, pool workers)
rqwait() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $2} END {printf "%.0f\n", s}'; }

run_once() {   # n run → one merged JSON line appended to $WORK/runs
  local n=$1 run=$2 k=$CLIENTS j fd p
  [ "$n" -lt "$k" ] && k=$n
  rm -f "$WORK"/in-* "$WORK"/out-* "$WORK"/err-*
  local quiet=0 busy=0
  if [ "$QUIET" -gt 0 ]; then
    for _ in $(seq 120); do busy=$(busy_pct); [ "$busy" -lt "$QUIET" ] && { quiet=1; break; }; done
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then echo "port $PORT is in use (set PORT)" >&2; exit 1; fi
  local hold_until=$(( $(date +%s%3N) + HOLD * 1000 ))
  BENCH_HOLD_UNTIL=$hold_until $spin "$BIN" run --log-level warn "$WORK/c.yaml" > /dev/null 2> "$WORK/sluice.log" & local pid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  if ! kill -0 $pid 2>/dev/null; then cat "$WORK/sluice.log" >&2; exit 1; fi
  local cpids=() fds=()
  for ((j = 0; j < k; j++)); do
    mkfifo "$WORK/in-$j"
    $cpin "${client[@]}" "$PROTO" "$url" $(( n / k + (j < n % k ? 1 : 0) )) \
      < "$WORK/in-$j" > "$WORK/out-$j" 2> "$WORK/err-$j" & cpids+=($!)
    exec {fd}> "$WORK/in-$j"; fds+=("$fd")
  done
  local t_conn=$(date +%s%3N)
  local ready=0
  for _ in $(seq 1500); do   # up to 150 s for every process to connect
    ready=$(cat "$WORK"/out-* | grep -c '^ready' || true)
    [ "$ready" -eq "$k" ] && break
    for p in "${cpids[@]}"; do kill -0 "$p" 2>/dev/null || fail "a client process exited: $(cat "$WORK"/err-*)"; done
    sleep 0.1
  done
  [ "$ready" -eq "$k" ] || fail "$((k - ready)) of $k client processes did not connect: $(cat "$WORK"/err-*)"
  local conn_ms=$(( $(date +%s%3N) - t_conn ))
  local open failed
  open=$(cat "$WORK"/out-* | awk '/^ready/ {s += $2} END {print s + 0}')
  failed=$(cat "$WORK"/out-* | awk '/^ready/ {s += $3} END {print s + 0}')
  local t0=$(( $(date +%s%3N) + 1000 ))
  [ "$t0" -lt $((hold_until + 1000)) ] && t0=$((hold_until + 1000))
  for fd in "${fds[@]}"; do echo "start $t0 $SECS" >&"$fd"; done
  sleep $(( (t0 - $(date +%s%3N) + 999) / 1000 ))
  local s0 s1 c0=0 c1=0 w0 w1 cpu0 cpu1
  s0=$(ticks $pid); w0=$(rqwait $pid); cpu0=$(cpus)
  for p in "${cpids[@]}"; do c0=$((c0 + $(ticks "$p"))); done
  if [ "${PERF:-0}" = 1 ]; then
    perf stat -x, -e task-clock -p $pid -o "$WORK/perf" -- sleep "$SECS" 2>/dev/null
  else
    sleep "$SECS"
  fi
  s1=$(ticks $pid); w1=$(rqwait $pid); cpu1=$(cpus)
  for p in "${cpids[@]}"; do c1=$((c1 + $(ticks "$p"))); done
  for p in "${cpids[@]}"; do   # each exits 2 s after the window; bounded wait
    for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  for fd in "${fds[@]}"; do exec {fd}>&-; done
  local rss
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill $pid; wait $pid 2>/dev/null || true
  grep -h '^{' "$WORK"/out-* | node bench/latency.js merge | node -e '
    const r = JSON.parse(require("fs").readFileSync(0));
    const a = process.argv.slice(1).map(Number);
    const [secs, hz, s, c, open, failed, slow, wait, b0, b1, e0, e1, connMs, rss, busy, quiet, taskMs] = a;
    const pct = (t) => Math.round(100 * t / hz / secs);
    Object.assign(r, {ready_open: open, ready_failed: failed, slow_disconnects: slow, connect_ms: connMs,
      rate: Math.round(r.sent / secs), sluice_cpu: pct(s), cpu0_busy: pct(e0 - b0),
      other_cpus_busy: pct(e1 - b1), sluice_runq_wait_ms: Math.round(wait / 1e6), sluice_peak_rss_mib: Math.round(rss / 1024),
      busy_before: busy, quiet_before: quiet,
      cpu_us_per_event: r.events && taskMs ? Math.round(taskMs * 1000 / r.events * 100) / 100 : null,
      // the figure the clients measure for the window (ticks read after the window
      // missed those of clients that had already exited)
      clients_cpu: r.clients_cpu_ms === null ? pct(c) : Math.round(r.clients_cpu_ms / 10 / secs),
      clients_us_per_event: !r.events ? null : Math.round((r.clients_cpu_ms === null ? c / hz * 1e3 : r.clients_cpu_ms) * 1e3 / r.events * 100) / 100});
    console.log(JSON.stringify(r));' "$SECS" "$hz" $((s1 - s0)) $((c1 - c0)) "$open" "$failed" \
      "$(grep -c 'disconnecting a slow' "$WORK/sluice.log" || true)" $((w1 - w0)) $cpu0 $cpu1 "$conn_ms" "$rss" "$busy" "$quiet" \
      "$(awk -F, '/task-clock/ {print $1}' "$WORK/perf" 2>/dev/null)" > "$WORK/line"
  echo "[$PROTO n=$n run $run] $(cat "$WORK/line")" >&2
  cat "$WORK"/err-* "$WORK/sluice.log" | sort | uniq -c | sed "s/^/  [$PROTO n=$n run $run] /" >&2
  figure "$open" "$PROTO n=$n run $run: clients connected"
  figure "$(node -e 'console.log(JSON.parse(require("fs").readFileSync(0)).events)' < "$WORK/line")" \
    "$PROTO n=$n run $run: events received in the window"
  cat "$WORK/line" >> "$WORK/runs"
}

if [ -n "$spin" ]; then cols="CPU 0 busy (sluice) | CPU 1 busy (clients)"; else cols="CPU 0 busy | CPU 1+ busy"; fi
echo "| clients | proto | client processes | msg/s sent | events received / expected | p50 | p99 | max | $cols |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in ${@:-100 1000}; do
  : > "$WORK/runs"
  for ((r = 1; r <= RUNS; r++)); do run_once "$n" "$r"; done
  node -e '
    const runs = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
    const med = (k) => { const v = runs.map((r) => r[k]).sort((a, b) => a - b); return v[Math.floor((v.length - 1) / 2)]; };
    const f = (x) => x.toLocaleString("en-US");
    console.log(`| ${f(Number(process.argv[2]))} | ${process.argv[3]} | ${med("procs")} | ${f(med("rate"))} | ` +
      `${f(med("events"))} / ${f(med("expected"))} | ${med("p50")} ms | ${med("p99")} ms | ${med("max")} ms | ` +
      `${med("cpu0_busy")}% | ${med("other_cpus_busy")}% |`);' "$WORK/runs" "$n" "$PROTO"
done
