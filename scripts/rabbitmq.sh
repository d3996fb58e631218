#!/bin/sh
# A RabbitMQ node of its own for specs and benchmarks (Debian's
# rabbitmq-server): loopback only, its own ports, node name, epmd, Erlang
# cookie, data and logs, all under DIR; plugins (the management one too) off.
#   scripts/rabbitmq.sh start DIR PORT   start (again, on DIR's data) and wait until it takes connections;
#                                        DIR/extra.conf, if there, is added to its rabbitmq.conf at the first start
#   scripts/rabbitmq.sh stop DIR         stop the node and its epmd; DIR stays
# RABBITMQ_START_TIMEOUT (s, default 90) bounds the wait.
set -eu
cmd=${1:-}
dir=${2:-}
[ -n "$dir" ] || { echo "usage: scripts/rabbitmq.sh start DIR PORT | stop DIR" >&2; exit 2; }
bin=/usr/lib/rabbitmq/bin
[ -x "$bin/rabbitmq-server" ] || { echo "rabbitmq-server is not installed (scripts/deps.sh installs it)" >&2; exit 3; }

env_of() {
  # A node's settings are fixed at its first start: a restart reuses them.
  . "$dir/env"
  export HOME="$dir" RABBITMQ_NODENAME RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT ERL_EPMD_PORT
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq" RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
  export RABBITMQ_PID_FILE="$dir/node.pid" RABBITMQ_LOGS="$dir/log/node.log"
  export RABBITMQ_ENABLED_PLUGINS="" ERL_EPMD_ADDRESS=127.0.0.1
  # Erlang writes a crash dump into its working directory (the checkout) unless told otherwise.
  export ERL_CRASH_DUMP="$dir/log/erl_crash.dump"
}

case $cmd in
  start)
    port=${3:?port}
    mkdir -p "$dir/mnesia" "$dir/log"
    if [ ! -f "$dir/env" ]; then
      # The distribution and epmd ports next to the AMQP one, a node name no other run has.
      cat > "$dir/env" <<EOF
RABBITMQ_NODENAME=sl$port$$@localhost
RABBITMQ_NODE_PORT=$port
RABBITMQ_DIST_PORT=$((port + 1))
ERL_EPMD_PORT=$((port + 2))
EOF
      echo "[]." > "$dir/enabled_plugins"
      : > "$dir/rabbitmq-env.conf"
      printf 'loopback_users = none\nlisteners.tcp.default = 127.0.0.1:%s\n' "$port" > "$dir/rabbitmq.conf"
      [ ! -f "$dir/extra.conf" ] || cat "$dir/extra.conf" >> "$dir/rabbitmq.conf"
      echo "[]." > "$dir/advanced.config"
      head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/.erlang.cookie"
      chmod 400 "$dir/.erlang.cookie"
    fi
    env_of
    nohup "$bin/rabbitmq-server" > "$dir/log/stdout.log" 2>&1 &
    echo $! > "$dir/server.pid"
    end=$(( $(date +%s) + ${RABBITMQ_START_TIMEOUT:-90} ))
    until "$bin/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" await_startup -t 5 > /dev/null 2>&1; do
      if [ "$(date +%s)" -ge "$end" ] || ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
        echo "rabbitmq did not start; its log:" >&2
        tail -n 30 "$dir/log/stdout.log" >&2
        exit 1
      fi
      sleep 0.5
    done
    echo "$RABBITMQ_NODENAME"
    ;;
  stop)
    [ -f "$dir/env" ] || exit 0
    env_of
    timeout 60 "$bin/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" stop > /dev/null 2>&1 || true
    pid=$(cat "$dir/server.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    # The node's own process (it writes its pid), if the wrapper went first,
    # then the epmd of its port.
    beam=$(cat "$dir/node.pid" 2>/dev/null || true)
    [ -z "$beam" ] || kill -KILL "$beam" 2>/dev/null || true
    epmd -port "$ERL_EPMD_PORT" -kill > /dev/null 2>&1 || true
    ;;
  *) echo "usage: scripts/rabbitmq.sh start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
