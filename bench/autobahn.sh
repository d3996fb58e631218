#!/bin/bash
# Autobahn|Testsuite's fuzzingclient against sluice's WebSocket echo (an
# http_server input's ws_path answered by sync_response): cases 1-10 and
# 12-13 (12/13 need permessage-deflate). Not part of `make test`: it takes a
# few minutes. Prints the counts per result and exits 1 when a case FAILED.
#
# The testsuite runs on Python 2.7 only; autobahntestsuite 0.8.2 is the last
# release for it. The environment is made once under $AUTOBAHN_VENV with
# pyenv's 2.7.18 (built from source when missing: ~5 minutes) and the
# dependency versions pinned below (the last that install on Python 2.7).
#
# Usage: bench/autobahn.sh [CASES...]   (default: 1.* ... 10.* 12.* 13.*)
#   AUTOBAHN_OUT   report directory (default build/autobahn): index.html and
#                  index.json per case
#   AUTOBAHN_VENV  the Python 2.7 environment (default ~/.cache/sluice/autobahn-py27)
set -eu
cd "$(dirname "$0")/.."
BIN=${SLUICE_BIN:-build/sluice}
OUT=${AUTOBAHN_OUT:-build/autobahn}
VENV=${AUTOBAHN_VENV:-$HOME/.cache/sluice/autobahn-py27}
PY27=2.7.18
PORT=${AUTOBAHN_PORT:-19001}

if [ ! -x "$VENV/bin/wstest" ]; then
  PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
  py="$PYENV_ROOT/versions/$PY27/bin/python2.7"
  if [ ! -x "$py" ]; then
    command -v pyenv >/dev/null || { echo "autobahn.sh: needs pyenv (or $py) to build Python $PY27" >&2; exit 1; }
    pyenv install -s "$PY27"
  fi
  "$py" -m pip install -q 'virtualenv<21'
  "$py" -m virtualenv -q "$VENV"
  # Pinned: newer releases of these dropped Python 2.7.
  "$VENV/bin/pip" install -q autobahntestsuite==0.8.2 autobahn==0.10.9 Twisted==20.3.0 \
    'zope.interface==5.5.2' 'Automat==22.10.0' 'attrs==21.4.0' 'cryptography==3.3.2' 'pyOpenSSL==21.0.0' \
    'service-identity==21.1.0' 'pyasn1==0.5.1' 'pyasn1-modules==0.3.0' 'cffi==1.15.1' 'pycparser==2.21' \
    'idna==2.10' 'hyperlink==21.0.0' 'incremental==22.10.0' 'constantly==15.1.0' 'PyHamcrest==1.10.1' \
    'six==1.17.0' 'txaio==2.1.0' 'klein==20.6.0' 'Werkzeug==1.0.1' 'Jinja2==2.11.3' 'MarkupSafe==1.1.1' \
    'Tubes==0.2.1' 'typing==3.10.0.0' 'enum34==1.1.10' 'ipaddress==1.0.23' 'ujson==2.0.3' 'wsaccel==0.6.6' \
    'unittest2==1.1.0' 'traceback2==1.4.0' 'linecache2==1.0.0' 'argparse==1.4.0'
fi

if [ $# -gt 0 ]; then CASES=("$@"); else CASES=(1.* 2.* 3.* 4.* 5.* 6.* 7.* 8.* 9.* 10.* 12.* 13.*); fi
cases_json=$(printf '"%s",' "${CASES[@]}")

WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
# 9.x sends messages of up to 16 MiB and expects them back.
cat > "$WORK/echo.yaml" <<YAML
http: {address: 127.0.0.1:$PORT, max_connections: 1000}
input:
  http_server: {path: /in, ws_path: /ws, ws_max_message_bytes: 64MiB, timeout: 60s}
output:
  sync_response: {}
YAML
"$BIN" run --log-level warn "$WORK/echo.yaml" > "$WORK/sluice.log" 2>&1 & pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/ping" && break; sleep 0.1; done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cat > "$WORK/fuzzingclient.json" <<JSON
{
  "outdir": "$OUT",
  "servers": [{"agent": "sluice", "url": "ws://127.0.0.1:$PORT/ws"}],
  "cases": [${cases_json%,}],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
(cd "$WORK" && PYTHONWARNINGS=ignore "$VENV/bin/wstest" -m fuzzingclient -s fuzzingclient.json) > "$WORK/wstest.log" 2>&1 || {
  tail -20 "$WORK/wstest.log" >&2
  exit 1
}
kill "$pid"
wait "$pid" || { echo "autobahn.sh: sluice exited with $? after the run; its log:" >&2; cat "$WORK/sluice.log" >&2; exit 1; }

# Counts per behavior (the close handshake's result is reported separately).
python3 - "$OUT/index.json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["sluice"]
counts, closes, failed = {}, {}, []
for case, r in runs.items():
    counts[r["behavior"]] = counts.get(r["behavior"], 0) + 1
    closes[r["behaviorClose"]] = closes.get(r["behaviorClose"], 0) + 1
    if r["behavior"] == "FAILED" or r["behaviorClose"] == "FAILED":
        failed.append(case)
key = lambda c: [int(x) for x in c.split(".")]
print("cases: %d" % len(runs))
print("behavior: " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
print("close: " + ", ".join("%s %d" % kv for kv in sorted(closes.items())))
if failed:
    print("FAILED: " + " ".join(sorted(failed, key=key)))
    sys.exit(1)
PY
echo "report: $OUT/index.html"
