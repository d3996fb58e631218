#!/bin/sh
# A real single-node Apache Kafka broker (KRaft: broker and controller in one
# JVM, no ZooKeeper, no Docker) for the specs, run from jars that Maven takes
# from Maven Central by name (scripts/kafka/pom.xml).
#
#   scripts/kafka.sh fetch            jars into the cache (once; quiet when there)
#   scripts/kafka.sh path             prints the cache directory, exit 1 if not fetched
#   scripts/kafka.sh start DIR PORT   formats DIR, starts the broker on 127.0.0.1:PORT,
#                                     returns once it answers metadata requests
#   scripts/kafka.sh stop DIR         SIGTERM, then SIGKILL if it does not exit in time
#
# Environment: KAFKA_VERSION (4.1.2), KAFKA_CACHE (the jar directory),
# KAFKA_HEAP (512m), KAFKA_START_TIMEOUT (60 s), KAFKA_STOP_TIMEOUT (30 s),
# KAFKA_JVM_OPTS (more java options), KAFKA_OWNER_PID (stop the broker when
# this process is gone).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SELF="$HERE/kafka.sh"
POM="$HERE/kafka/pom.xml"
KAFKA_VERSION=${KAFKA_VERSION:-4.1.2}
CACHE=${KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kafka-$KAFKA_VERSION}

die() { echo "kafka: $*" >&2; exit 1; }

# The POM is part of what the cache holds: a changed POM (another dependency,
# another log4j) must not be served by jars fetched for the old one.
stamp() { { echo "$KAFKA_VERSION"; cat "$POM"; } | sha256sum | cut -d' ' -f1; }

fetched() { [ -f "$CACHE/.stamp" ] && [ "$(cat "$CACHE/.stamp")" = "$(stamp)" ]; }

cmd_fetch() {
  fetched && return 0
  command -v mvn >/dev/null 2>&1 || die "mvn not found (Debian package maven; scripts/deps.sh installs it)"
  mkdir -p "$(dirname "$CACHE")"
  # Two fetches at once (deps.sh and a spec run) must not interleave.
  exec 9>"$CACHE.lock"
  flock -w 600 9 || die "another fetch holds $CACHE.lock"
  fetched && return 0
  echo "kafka: fetching Kafka $KAFKA_VERSION jars from Maven Central into $CACHE"
  tmp="$CACHE.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # Into a temporary directory first, so that an interrupted fetch never
  # leaves a half classpath that `path` would call complete.
  if ! mvn -B -q -Dstyle.color=never -f "$POM" \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/libs" \
      > "$tmp/mvn.log" 2>&1; then
    tail -n 40 "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
  fi
  ls "$tmp/libs/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null 2>&1 || { rm -rf "$tmp"; die "mvn finished without kafka_2.13-$KAFKA_VERSION.jar"; }
  stamp > "$tmp/.stamp"
  rm -rf "$CACHE"
  mv "$tmp" "$CACHE"
}

cmd_path() {
  fetched || die "Kafka $KAFKA_VERSION jars are not in $CACHE (scripts/kafka.sh fetch, or scripts/deps.sh)"
  echo "$CACHE"
}

# Kafka 4 is compiled for Java 17; an older java fails with a class-version
# error deep in the log, so say it up front.
check_java() {
  command -v java >/dev/null 2>&1 || die "java not found (Debian package openjdk-17-jre-headless)"
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)
  [ -n "$v" ] && [ "$v" -ge 17 ] || die "Kafka $KAFKA_VERSION needs Java 17 or newer; java -version says ${v:-nothing}"
}

# A port nobody listens on, below Linux's ephemeral range (32768+) so that
# outgoing connections never take it, chosen the way spec/helpers.lua does.
free_port() {
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 12000))
    if python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$p" 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  die "no free port found for the controller listener"
}

# Running and not a zombie: a broker that exited stays a zombie until its
# parent (this script, or whatever adopted it) reaps it, and kill -0 still
# succeeds on a zombie.
alive() {
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c 1)
  [ -n "$st" ] && [ "$st" != Z ]
}

# The pid in DIR/pid, if that process is still this DIR's broker (a stale
# pid file must never make us signal an unrelated process that reused the pid).
broker_pid() {
  [ -f "$1/pid" ] || return 1
  pid=$(cat "$1/pid")
  [ -n "$pid" ] && alive "$pid" || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $1/server.properties" || return 1
  echo "$pid"
}

log_tail() {
  # The cause is usually an ERROR line that the shutdown's INFO lines have
  # pushed out of the tail.
  if grep -qE "\] (ERROR|FATAL) " "$1/broker.log" 2>/dev/null; then
    echo "--- errors in $1/broker.log ---" >&2
    grep -E -A 2 "\] (ERROR|FATAL) " "$1/broker.log" | head -n 24 >&2
  fi
  echo "--- last lines of $1/broker.log ---" >&2
  tail -n 20 "$1/broker.log" >&2 2>/dev/null || true
  if [ -s "$1/stdout.log" ]; then
    echo "--- $1/stdout.log ---" >&2
    tail -n 20 "$1/stdout.log" >&2
  fi
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

cmd_start() {
  [ $# -eq 2 ] || die "usage: kafka.sh start DIR PORT"
  mkdir -p "$1"
  dir=$(cd "$1" && pwd)
  port=$2
  command -v kcat >/dev/null 2>&1 || die "kcat not found (Debian package kcat; scripts/deps.sh installs it)"
  check_java
  cp=$(cmd_path)
  if pid=$(broker_pid "$dir"); then die "a broker already runs from $dir (pid $pid)"; fi
  t0=$(now_ms)

  # A restart on the same DIR keeps its data and so must keep the controller
  # endpoint that the formatted quorum recorded.
  if [ -f "$dir/controller.port" ]; then cport=$(cat "$dir/controller.port"); else
    cport=$(free_port)
    while [ "$cport" = "$port" ]; do cport=$(free_port); done
    echo "$cport" > "$dir/controller.port"
  fi

  cat > "$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF

  # Everything to one file in DIR: the specs print its tail when the broker
  # misbehaves, and nothing reaches the caller's terminal.
  cat > "$dir/log4j2.properties" <<EOF
status = warn
# Kafka stops its own logging on SIGTERM; log4j's hook would only warn that
# it came too late.
shutdownHook = disable
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/broker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
EOF
  # A restart keeps the previous run's log aside: the checks below read this
  # run's lines only (an old "Address already in use" is no reason to retry).
  [ -f "$dir/broker.log" ] && mv "$dir/broker.log" "$dir/broker.log.1"
  jvm="-Xmx${KAFKA_HEAP:-512m} -Xms${KAFKA_HEAP:-512m} -Djava.awt.headless=true -Dlog4j2.configurationFile=$dir/log4j2.properties ${KAFKA_JVM_OPTS:-}"

  if [ ! -f "$dir/data/meta.properties" ]; then
    # A cluster id is 16 random bytes in URL-safe base64 without padding;
    # making it here saves a JVM start (StorageTool random-uuid). Like
    # Kafka's own Uuid.randomUuid it must not start with '-' (the tool would
    # read it as an option: 1 start in 64 failed).
    cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c 1-22 | sed 's/^-/A/')
    # --standalone: this node alone is the controller quorum (KIP-853). A
    # short-lived tool: C1 alone and the serial collector start it faster.
    # shellcheck disable=SC2086
    if ! timeout -k 5 60 java $jvm -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$cp/libs/*" kafka.tools.StorageTool format \
        --standalone -t "$cid" -c "$dir/server.properties" > "$dir/format.log" 2>&1; then
      cat "$dir/format.log" >&2
      die "formatting $dir/data failed"
    fi
  fi

  # Detached from the caller's stdout and stderr: a caller that reads them
  # (a spec, $(...)) must see EOF when this script exits, not when Kafka does.
  # shellcheck disable=SC2086
  nohup java $jvm -cp "$cp/libs/*" kafka.Kafka "$dir/server.properties" \
    > "$dir/stdout.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$dir/pid"

  if [ -n "${KAFKA_OWNER_PID:-}" ]; then
    # A spec run killed halfway (timeout, Ctrl-C) would otherwise leave a
    # broker holding 512 MB and its ports until the machine goes away.
    nohup "$SELF" watch "$KAFKA_OWNER_PID" "$dir" > /dev/null 2>&1 < /dev/null &
  fi

  limit=$(( ${KAFKA_START_TIMEOUT:-60} * 1000 ))
  while :; do
    # Metadata answered by this broker means its socket server accepts
    # requests, which in KRaft happens only after it has caught up with the
    # controller and been unfenced.
    # Short reconnect backoffs: librdkafka's defaults (up to 10 s) would let
    # a probe sleep through the moment the listener opens.
    if timeout -k 1 5 kcat -L -b "127.0.0.1:$port" -m 2 \
        -X reconnect.backoff.ms=50 -X reconnect.backoff.max.ms=100 > /dev/null 2>&1; then
      echo "kafka: Kafka $KAFKA_VERSION ready on 127.0.0.1:$port in $(( $(now_ms) - t0 )) ms (pid $pid, controller :$cport, log $dir/broker.log)"
      return 0
    fi
    if ! alive "$pid"; then
      log_tail "$dir"
      rm -f "$dir/pid"
      # The exact phrase lets callers pick another port and try again.
      if grep -q "Address already in use" "$dir/broker.log" 2>/dev/null; then
        die "the broker exited: address already in use (port $port or $cport)"
      fi
      die "the broker exited before answering on 127.0.0.1:$port"
    fi
    if [ $(( $(now_ms) - t0 )) -ge "$limit" ]; then
      log_tail "$dir"
      "$SELF" stop "$dir" >&2 || true
      die "the broker did not answer on 127.0.0.1:$port within ${KAFKA_START_TIMEOUT:-60} s"
    fi
    sleep 0.1
  done
}

cmd_stop() {
  [ $# -eq 1 ] || die "usage: kafka.sh stop DIR"
  [ -d "$1" ] || return 0
  dir=$(cd "$1" && pwd)
  pid=$(broker_pid "$dir") || { rm -f "$dir/pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  # A controlled shutdown of a one-node cluster takes a couple of seconds;
  # past the limit the data may be left unflushed, which a test can live with.
  limit=$(( ${KAFKA_STOP_TIMEOUT:-30} * 10 ))
  i=0
  while alive "$pid" && [ "$i" -lt "$limit" ]; do sleep 0.1; i=$((i + 1)); done
  if alive "$pid"; then
    echo "kafka: pid $pid did not exit within ${KAFKA_STOP_TIMEOUT:-30} s of SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    i=0
    while alive "$pid" && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    alive "$pid" && die "pid $pid survived SIGKILL"
  fi
  rm -f "$dir/pid"
}

# Internal (start runs it): stops DIR's broker once OWNER has exited; ends
# by itself when the broker is stopped some other way.
cmd_watch() {
  while alive "$1" && broker_pid "$2" > /dev/null; do sleep 1; done
  alive "$1" || cmd_stop "$2"
}

[ $# -ge 1 ] || die "usage: kafka.sh fetch | path | start DIR PORT | stop DIR"
sub=$1
shift
case "$sub" in
  fetch) cmd_fetch "$@" ;;
  path) cmd_path "$@" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  watch) cmd_watch "$@" ;;
  *) die "unknown subcommand $sub (fetch | path | start DIR PORT | stop DIR)" ;;
esac
