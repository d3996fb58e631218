#!/bin/sh
# Installs dependencies from Debian by package name (and, for tests, Kafka's
# jars and the specs' npm clients). Idempotent and quiet when everything is
# present; uses sudo when not root.
#   scripts/deps.sh run    what building and running sluice needs (make run)
#   scripts/deps.sh test   that, plus what the tests and benchmarks need (make test; the default)
set -eu
what=${1:-test}
RUN_PKGS="build-essential cmake ninja-build pkg-config libluajit2-5.1-dev libuv1-dev node-llhttp
librdkafka-dev libyaml-dev lua-cjson libssl-dev libwslay-dev libjwt-dev libyajl-dev libjansson-dev
libcurl4-openssl-dev uthash-dev curl libhiredis-dev libpcre2-dev libxxhash-dev zlib1g-dev lua-mpack libnats-dev libmosquitto-dev librabbitmq-dev libjs-codemirror"
# Sanitizer and fuzz builds (clang), busted on LuaJIT, the real peers and
# clients of the specs, and the benchmarks' tools.
TEST_PKGS="clang libclang-rt-14-dev luajit2 lua-busted jq openssl python3 python3-websockets
python3-prometheus-client python3-jsonschema python3-yaml prometheus-pushgateway chromium nginx-light redis-server wrk hyperfine time strace
openjdk-17-jre-headless maven kcat nats-server mosquitto mosquitto-clients rabbitmq-server
amqp-tools python3-pika tinyproxy python3-oauthlib"

# The stdin and file inputs' csv scanner.
RUN_PKGS="$RUN_PKGS libcsv-dev"
# The scanners' tar (libarchive) and decompress algorithms bzip2, lz4, zstd, snappy;
# the archive and compression tools their spec makes inputs with.
RUN_PKGS="$RUN_PKGS libarchive-dev libbz2-dev liblz4-dev libzstd-dev libsnappy-dev"
TEST_PKGS="$TEST_PKGS tar bzip2 lz4 zstd"
case $what in
  run) PKGS=$RUN_PKGS ;;
  test)
    PKGS="$RUN_PKGS $TEST_PKGS"
    command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm" ;;
  *) echo "usage: scripts/deps.sh [run|test]" >&2; exit 2 ;;
esac

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
  echo "deps: installing$missing"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # Debian starts nginx, redis, the pushgateway and the brokers on install; benchmarks and specs run their own.
  if [ "$what" = test ]; then
    $SUDO systemctl disable --now nginx redis-server prometheus-pushgateway mosquitto nats-server rabbitmq-server epmd.socket epmd >/dev/null 2>&1 || true
  fi
fi

[ "$what" = test ] || exit 0

# The Kafka broker that the Kafka specs start: its jars from Maven Central,
# cached outside the tree (scripts/kafka.sh fetch says nothing when they are there).
"$(dirname "$0")/kafka.sh" fetch

# The NATS specs' peer (nats-py), from PyPI.
python3 -c 'import nats' 2>/dev/null || python3 -m pip install -q nats-py==2.16.0 2>/dev/null ||
  python3 -m pip install -q --break-system-packages nats-py==2.16.0

# The specs' npm clients (ws, eventsource, playwright-core), from the npm
# registry at the versions package-lock.json pins.
cd "$(dirname "$0")/../spec/node"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --silent
  touch node_modules
fi
