#!/bin/sh
# Instructions per https call of the http processor (`generate → http GET
# https://127.0.0.1/status?code=200 → drop`, one call at a time, kept-alive
# connections) through each client: libcurl (a `tls.root_cas_file` keeps a
# request there) and sluice's own (http/hclient_lean.c, which reads the CA
# from SSL_CERT_FILE). valgrind --tool=callgrind of N messages minus a run
# of BASE (default 1: startup), divided by N-BASE; a BASE of thousands takes
# the handshakes off too when both runs opened as many connections. The upstream is spec/tools/upstream.py
# over TLS (certificates from spec/tools/tls_certs.py); callgrind counts
# sluice only. Env: N (default 5000), SLUICE_BIN.
set -eu
cd "$(dirname "$0")/.."
BIN=${SLUICE_BIN:-build/sluice}
N=${N:-5000}
BASE=${BASE:-1}
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK/up.pid") 2>/dev/null || true; rm -rf "$WORK"' EXIT
python3 spec/tools/tls_certs.py "$WORK"
python3 spec/tools/upstream.py 0 "$WORK/good.pem" "$WORK/good.key" > "$WORK/up.out" 2>&1 &
echo $! > "$WORK/up.pid"
for _ in $(seq 100); do grep -q ready "$WORK/up.out" && break; sleep 0.1; done
PORT=$(sed -n 's/^ready //p' "$WORK/up.out")

conf() {   # $1 messages, $2 extra tls lines
  cat > "$WORK/c.yaml" <<YAML
input:
  generate: {count: $1, interval: "", mapping: 'root = {}'}
pipeline:
  threads: 1
  processors:
    - http:
        url: https://127.0.0.1:$PORT/status?code=200
        verb: GET
$2
output:
  drop: {}
YAML
}

instr() {   # $1 messages, $2 tls lines: instructions of the run
  conf "$1" "$2"
  SSL_CERT_FILE=$WORK/ca.pem valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
    "$BIN" run --log-level error "$WORK/c.yaml" > /dev/null 2> "$WORK/cg.err"
  sed -n 's/^summary: //p' "$WORK/cg.out"
}

up() { curl -s --cacert "$WORK/ca.pem" "https://127.0.0.1:$PORT/$1"; }

echo "| client | $N calls | $BASE calls | per call | connections (TLS resumed) of the $N, of the $BASE |"
echo "| --- | --- | --- | --- | --- |"
for client in libcurl lean; do
  tls=""
  [ "$client" = libcurl ] && tls="        tls: {root_cas_file: $WORK/ca.pem}"
  up reset > /dev/null
  a=$(instr "$N" "$tls")
  conns=$(up stats | python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["connections"] - 1, "(%d)" % s["resumed"])')
  up reset > /dev/null
  b=$(instr "$BASE" "$tls")
  bconns=$(up stats | python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["connections"] - 1, "(%d)" % s["resumed"])')
  echo "| $client | $a | $b | $(( (a - b) / (N - BASE) )) | $conns, $bconns |"
done
