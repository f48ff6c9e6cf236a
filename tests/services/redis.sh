#!/usr/bin/env bash
# redis.sh start|stop - a throwaway redis-server on 127.0.0.1 for the test suite.
#
# No persistence, loopback only, stopped by PID. Idempotent: `start` does nothing when the
# server recorded in the state folder already answers PING; `stop` is fine when nothing runs.
# Knobs: FORGEML_REDIS_DIR [${TMPDIR:-/tmp}/forgeml-redis]  FORGEML_REDIS_PORT [6390]
#        FORGEML_SERVICES_INSTALL [1] (apt-get install redis-server when it is missing)
#        FORGEML_REDIS_APPENDONLY [no] (yes: keep the data in an append-only file across a restart)
set -euo pipefail
NAME=redis
DIR=${FORGEML_REDIS_DIR:-${TMPDIR:-/tmp}/forgeml-redis}
PORT=${FORGEML_REDIS_PORT:-6390}
# shellcheck source=tests/services/lib.sh
source "$(dirname "$0")/lib.sh"
pong() { [[ $(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null) == PONG ]]; }
stop() { stop_recorded redis; }

start() {
  if [[ ${FORGEML_SERVICES_INSTALL:-1} == 1 ]] && ! { command -v redis-server && command -v redis-cli; } >/dev/null; then
    log "installing redis-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    # The Debian postinst may try to start a system redis on 6379; images with a
    # policy-rc.d that exits 101 prevent it. Ours runs on its own port either way.
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends redis-server >/dev/null
  fi
  if [[ -f $PIDS ]]; then
    local pid port; pid=$(awk '$1=="redis"{print $2}' "$PIDS"); port=$(awk '$1=="redis"{print $3}' "$PIDS")
    if [[ -n $port && $port != "$PORT" ]] && alive "$pid"; then
      log "redis $pid from $DIR listens on port $port, not $PORT: stop it first or set FORGEML_REDIS_DIR"
      exit 1
    fi
    if alive "$pid" && pong; then log "already running: redis $pid on 127.0.0.1:$PORT"; return 0; fi
    log "stale state, restarting"; stop
  fi
  mkdir -p "$DIR"
  cat > "$DIR/redis.conf" <<CONF
# loopback-only throwaway redis for the forgeml test suite
bind 127.0.0.1
port $PORT
protected-mode yes
daemonize yes
pidfile $DIR/redis.pid
logfile $DIR/redis.log
dir $DIR
save ""
appendonly ${FORGEML_REDIS_APPENDONLY:-no}
databases 16
CONF
  rm -f "$DIR/redis.pid"
  redis-server "$DIR/redis.conf" </dev/null >/dev/null
  for _ in $(seq 100); do [[ -s $DIR/redis.pid ]] && break; sleep 0.05; done
  [[ -s $DIR/redis.pid ]] || { log "redis did not write its pid file"; tail "$DIR/redis.log" >&2; exit 1; }
  echo "redis $(cat "$DIR/redis.pid") $PORT" > "$PIDS"
  for _ in $(seq 100); do pong && break; sleep 0.05; done
  pong || { log "redis does not answer PING"; tail "$DIR/redis.log" >&2; exit 1; }
  log "up: redis $(cat "$DIR/redis.pid") on 127.0.0.1:$PORT"
}

dispatch "$@"
