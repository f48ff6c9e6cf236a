#!/usr/bin/env bash
# s3.sh start|stop - an S3-compatible endpoint on 127.0.0.1 for the test suite: moto's server mode.
#
# moto_server is an in-memory MOCK of S3, not a storage server: objects are gone when it stops, and it
# does not check SigV4 signatures (any key pair works). It is the more faithful of the stand-ins that
# install here (AWS-style multipart ETags, versioning, conditional PUT, 403 on anonymous reads), so the
# tests keep to behaviour real S3 shares with it: path-style requests, put/get/head/list/copy/delete.
# Loopback only, stopped by PID. Idempotent: `start` does nothing when the recorded server answers;
# `stop` is fine when nothing runs. Writes $DIR/env (FORGEML_S3_ENDPOINT + AWS_* credentials).
# moto comes from the Python on PATH when it has `moto[server]`, otherwise from its own venv under $DIR.
# Knobs: FORGEML_S3_DIR [${TMPDIR:-/tmp}/forgeml-s3]  FORGEML_S3_PORT [4571]
#        FORGEML_SERVICES_INSTALL [1] (pip install moto[server] into $DIR/venv when it is missing)
set -euo pipefail
DIR=${FORGEML_S3_DIR:-${TMPDIR:-/tmp}/forgeml-s3}
PORT=${FORGEML_S3_PORT:-4571}
PIDS=$DIR/pids
log() { echo "[s3.sh] $*" >&2; }
alive() { [[ -n ${1:-} && -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
answers() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$PORT/" 2>/dev/null | grep -q -E '^[2-4][0-9][0-9]$'; }
has_moto() { (cd / && "$1" -c 'import moto.server, flask') >/dev/null 2>&1; }

stop() {
  [[ -f $PIDS ]] || { log "nothing to stop"; return 0; }
  local pid; pid=$(awk '$1=="moto"{print $2}' "$PIDS")
  if alive "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid"
    log "stopped moto $pid"
  fi
  rm -f "$PIDS"
}

python_with_moto() {
  local py
  py=$(command -v python3 || true)
  if [[ -n $py ]] && has_moto "$py"; then echo "$py"; return 0; fi
  if has_moto "$DIR/venv/bin/python"; then echo "$DIR/venv/bin/python"; return 0; fi
  [[ ${FORGEML_SERVICES_INSTALL:-1} == 1 ]] || { log "moto[server] is not installed (pip install 'moto[server]')"; return 1; }
  log "pip installing moto[server] into $DIR/venv"
  python3 -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install -q 'moto[server]>=5.1,<6' >&2
  echo "$DIR/venv/bin/python"
}

start() {
  mkdir -p "$DIR"
  if [[ -f $PIDS ]]; then
    local pid; pid=$(awk '$1=="moto"{print $2}' "$PIDS")
    if alive "$pid" && answers; then log "already running: moto $pid on 127.0.0.1:$PORT"; write_env; return 0; fi
    log "stale state, restarting"; stop
  fi
  local py; py=$(python_with_moto)
  # setsid: its own session, so a test run's Ctrl-C does not take the shared server down
  setsid "$py" -m moto.server -H 127.0.0.1 -p "$PORT" </dev/null >"$DIR/server.log" 2>&1 &
  local pid=$!
  echo "moto $pid $PORT" > "$PIDS"
  for _ in $(seq 150); do answers && break; alive "$pid" || break; sleep 0.1; done
  answers || { log "moto does not answer on 127.0.0.1:$PORT"; tail -20 "$DIR/server.log" >&2; stop; exit 1; }
  write_env
  log "up: moto $pid on http://127.0.0.1:$PORT; source $DIR/env"
}

write_env() {
  cat > "$DIR/env" <<EOF
# S3-compatible endpoint on loopback (moto server mode, in memory), written by tests/services/s3.sh
export FORGEML_S3_ENDPOINT=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-testing}
EOF
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
