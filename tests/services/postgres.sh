#!/usr/bin/env bash
# postgres.sh start|stop - a throwaway PostgreSQL server on 127.0.0.1 for the test suite.
#
# Its own cluster under the state folder (initdb; durability off: tests never survive a crash),
# loopback only, its own port, stopped by PID with SIGINT (a fast shutdown: open transactions are
# rolled back and clients disconnected; SIGTERM would wait for every client). initdb and postgres
# refuse to run as root, so as root they run as the `postgres` OS user (created when missing).
# Idempotent: `start` does nothing when the server recorded in the state folder answers.
# Writes $DIR/env with FORGEML_PG_URL for the tests (the role is a superuser: each test creates its
# own schema).
# Knobs: FORGEML_POSTGRES_DIR [${TMPDIR:-/tmp}/forgeml-postgres]  FORGEML_POSTGRES_PORT [5441]
#        FORGEML_SERVICES_INSTALL [1] (apt-get install postgresql when initdb is missing)
set -euo pipefail
DIR=${FORGEML_POSTGRES_DIR:-${TMPDIR:-/tmp}/forgeml-postgres}
PORT=${FORGEML_POSTGRES_PORT:-5441}
DATA=$DIR/data
PIDS=$DIR/pids
ROLE=forgeml
PASS=forgeml
DB=forgeml
log() { echo "[postgres.sh] $*" >&2; }
alive() { [[ -n ${1:-} && -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

as_owner() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop() {
  [[ -f $PIDS ]] || { log "nothing to stop"; return 0; }
  local pid; pid=$(awk '$1=="postgres"{print $2}' "$PIDS")
  if alive "$pid"; then
    kill -INT "$pid"
    for _ in $(seq 150); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -QUIT "$pid"; sleep 1; fi
    log "stopped postgres $pid"
  fi
  rm -f "$PIDS"
}

start() {
  local bin; bin=$(bindir || true)
  if [[ ${FORGEML_SERVICES_INSTALL:-1} == 1 && ! -x ${bin:-/nonexistent}/initdb ]]; then
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    # a policy-rc.d that exits 101 keeps the package from starting its own cluster on 5432
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends postgresql >/dev/null
    bin=$(bindir)
  fi
  [[ -x ${bin:-/nonexistent}/initdb ]] || { log "no initdb under /usr/lib/postgresql/*/bin: install postgresql"; exit 1; }
  ready() { "$bin/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 1 >/dev/null 2>&1; }
  if [[ -f $PIDS ]]; then
    local pid; pid=$(awk '$1=="postgres"{print $2}' "$PIDS")
    if alive "$pid" && ready; then log "already running: postgres $pid on 127.0.0.1:$PORT"; write_env; return 0; fi
    log "stale state, restarting"; stop
  fi
  if [[ $(id -u) == 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir "$DIR" --shell /bin/sh postgres
  fi
  mkdir -p "$DIR"
  [[ $(id -u) == 0 ]] && chown postgres "$DIR"
  chmod 755 "$DIR"
  if [[ ! -s $DATA/PG_VERSION ]]; then
    rm -rf "$DATA"
    as_owner "$bin/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || { log "initdb failed"; cat "$DIR/initdb.log" >&2; exit 1; }
    cat >> "$DATA/postgresql.conf" <<CONF
# loopback-only throwaway server for the forgeml test suite
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
log_min_messages = warning
CONF
  fi
  as_owner "$bin/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 60 start >/dev/null \
    || { log "pg_ctl start failed"; tail -20 "$DIR/postgres.log" >&2; exit 1; }
  local pid; pid=$(head -1 "$DATA/postmaster.pid")
  echo "postgres $pid $PORT" > "$PIDS"
  for _ in $(seq 100); do ready && break; sleep 0.1; done
  ready || { log "not answering on 127.0.0.1:$PORT"; tail "$DIR/postgres.log" >&2; exit 1; }
  psql_su() { as_owner "$bin/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
  [[ $(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname='$ROLE'") == 1 ]] \
    || psql_su -c "CREATE ROLE $ROLE LOGIN SUPERUSER PASSWORD '$PASS'"
  [[ $(psql_su -c "SELECT 1 FROM pg_database WHERE datname='$DB'") == 1 ]] \
    || psql_su -c "CREATE DATABASE $DB OWNER $ROLE"
  write_env
  log "up: postgres $pid on 127.0.0.1:$PORT"
}

write_env() {
  echo "export FORGEML_PG_URL=postgresql://$ROLE:$PASS@127.0.0.1:$PORT/$DB" > "$DIR/env"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
