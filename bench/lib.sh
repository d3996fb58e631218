# Sourced by the bench scripts: a benchmark that measured nothing fails loudly
# instead of printing a row of zeros (or of empty cells).

# fail MESSAGE...: says why on stderr and exits 1 (the script's EXIT trap cleans up).
fail() { echo "bench: $*" >&2; exit 1; }

# figure VALUE WHAT: VALUE must be a number above 0; else the run fails.
# Use it on every figure a row prints, in the script's main shell (an exit in
# a $(...) ends only that subshell).
figure() {
  awk -v v="$1" 'BEGIN { exit !(v ~ /^[0-9]+(\.[0-9]+)?$/ && v + 0 > 0) }' ||
    fail "$2: measured nothing (got '$1')"
}

# wait_http URL [PID]: until URL answers (10 s at most); fails if it does not,
# or as soon as process PID is gone.
wait_http() {
  for _ in $(seq 200); do
    curl -s -o /dev/null -m 1 "$1" && return 0
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then fail "the server for $1 exited"; fi
    sleep 0.05
  done
  fail "nothing answers $1"
}

# wrk_check FILE: wrk's report in FILE has no non-2xx answers and a rate above 0.
wrk_check() {
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$1")
  [ -z "$non2xx" ] || fail "wrk got $non2xx non-2xx answers: $(cat "$1")"
  figure "$(awk '/^Requests\/sec/ {print $2}' "$1")" "wrk's requests/s"
}

# wrk_post FILE: writes the wrk script of the HTTP benchmarks (bench/http.sh,
# ab_http.sh, http_threads.sh): a small JSON POST.
wrk_post() {
  cat > "$1" <<'LUA'
wrk.method = "POST"
wrk.body = '{"user":"ada","event":"click","n":42}'
wrk.headers["Content-Type"] = "application/json"
LUA
}

# median: the median of the numbers on stdin, one a line (the mean of the
# middle two for an even count).
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# threads_rows: config() and the rows' processors (MAP, FILTER, PASS) of
# bench/threads.sh, for the scripts that run its configs another way.
threads_rows() {
  eval "$(sed -n '/^config()/,/^}/p' bench/threads.sh)"
  eval "$(sed -n '/^MAP=/,/^PASS=/p' bench/threads.sh)"
}

# now: seconds since the epoch with nanoseconds; rate START END: $N over the
# seconds between them, per second.
now() { date +%s.%N; }
rate_between() { echo "$N $1 $2" | awk '{printf "%d\n", $1 / ($3 - $2)}'; }
# Polls the /metrics of the sluice with pid $1 (HTTP port $2) until its inputs
# received $3 messages, for at most $4 polls of $5 s (bench/count_in.py: one
# process, no curl per poll); sets got. Fails, naming $6, when sluice exits
# first.
wait_received() {
  got=$(python3 bench/count_in.py "$2" "$3" "$(echo "$4 $5" | awk '{print $1 * $2}')" "$1")
  [ "${got:-0}" -ge "$3" ] || kill -0 "$1" 2>/dev/null || fail "sluice $6 exited"
}

# benthos_build DIR PACKAGE...: builds Benthos v4.27.0 from its public source
# (the Go module proxy) into DIR/benthos with the components of each
# PACKAGE of public/components (pure, io, ...), unless it is there already.
benthos_build() {
  dir=$1; shift
  [ -x "$dir/benthos" ] && return 0
  mkdir -p "$dir"
  {
    printf 'package main\n\nimport (\n\t"context"\n\n'
    for p in "$@"; do printf '\t_ "github.com/benthosdev/benthos/v4/public/components/%s"\n' "$p"; done
    printf '\t"github.com/benthosdev/benthos/v4/public/service"\n)\n\nfunc main() { service.RunCLI(context.Background()) }\n'
  } > "$dir/main.go"
  printf 'module benthosbench\n\ngo 1.22\n' > "$dir/go.mod"
  (cd "$dir" && GOFLAGS=-mod=mod go get github.com/benthosdev/benthos/v4@v4.27.0 >/dev/null 2>&1 &&
    GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 && go build -o benthos .) || fail "could not build Benthos"
}
