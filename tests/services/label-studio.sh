#!/usr/bin/env bash
# label-studio.sh start|stop - a throwaway Label Studio server on 127.0.0.1 for the annotation tests.
#
# Label Studio (Django + SQLite) installs into its own virtual environment, apart from forgeml's: it
# pins Django and other packages of its own. A preset admin user and API token are created on the
# first start of the data folder. Loopback only, stopped by PID. Idempotent: `start` does nothing when
# the recorded server answers /health. Installing and the first start take minutes, so .ci/run starts it
# in the background while the Python packages install.
#
# Facts that matter (label-studio 1.23.2):
#  - sentry-sdk 3 breaks its settings import ("Unknown option 'send_default_pii'"): pinned < 3, and
#    SENTRY_DSN is empty so nothing is reported outside; analytics and version checks are off too.
#  - The user and token come from LABEL_STUDIO_USERNAME/_PASSWORD/_USER_TOKEN on the first start of
#    a data folder only, so the token lives in a file beside it.
#  - --enable-legacy-api-token makes "Authorization: Token <token>" (label-studio-sdk's api_key) work.
#  - It runs Django's single-process server: one PID.
#
# Outputs under the state folder: data/, token, server.log, pids ("label-studio PID PORT"),
#   env (FORGEML_LABEL_STUDIO_URL, FORGEML_LABEL_STUDIO_TOKEN).
# Knobs: FORGEML_LABEL_STUDIO_DIR [${TMPDIR:-/tmp}/forgeml-label-studio]
#        FORGEML_LABEL_STUDIO_VENV [${TMPDIR:-/tmp}/forgeml-label-studio-venv]
#        FORGEML_LABEL_STUDIO_PORT [8093]  FORGEML_SERVICES_INSTALL [1] (pip install when missing)
set -euo pipefail
DIR=${FORGEML_LABEL_STUDIO_DIR:-${TMPDIR:-/tmp}/forgeml-label-studio}
VENV=${FORGEML_LABEL_STUDIO_VENV:-${TMPDIR:-/tmp}/forgeml-label-studio-venv}
PORT=${FORGEML_LABEL_STUDIO_PORT:-8093}
VERSION=1.23.2
USER_=admin@example.com
PASS=forgeml-test-password
PIDS=$DIR/pids
log() { echo "[label-studio.sh] $*" >&2; }
alive() { [[ -n ${1:-} && -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
healthy() { [[ $(curl -sf -m 3 "http://127.0.0.1:$PORT/health" 2>/dev/null) == *UP* ]]; }

stop() {
  [[ -f $PIDS ]] || { log "nothing to stop"; return 0; }
  local pid; pid=$(awk '$1=="label-studio"{print $2}' "$PIDS")
  if alive "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid"
    log "stopped label-studio $pid"
  fi
  rm -f "$PIDS"
}

install() {
  [[ -x $VENV/bin/label-studio ]] && return 0
  [[ ${FORGEML_SERVICES_INSTALL:-1} == 1 ]] || { log "label-studio is not installed in $VENV"; exit 1; }
  [[ -x $VENV/bin/python ]] || { log "creating $VENV"; python3 -m venv "$VENV"; }
  log "pip installing label-studio==$VERSION into $VENV (a minute or two)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "label-studio==$VERSION" 'sentry-sdk<3'
}

start() {
  mkdir -p "$DIR"
  install
  if [[ -f $PIDS ]]; then
    local pid; pid=$(awk '$1=="label-studio"{print $2}' "$PIDS")
    if alive "$pid" && healthy; then log "already running: label-studio $pid on 127.0.0.1:$PORT"; return 0; fi
    log "stale state, restarting"; stop
  fi
  mkdir -p "$DIR/data"
  if [[ ! -s $DIR/token ]]; then
    python3 -c 'import secrets; print(secrets.token_hex(20))' > "$DIR/token"
    chmod 600 "$DIR/token"
  fi
  local token; token=$(cat "$DIR/token")
  env LABEL_STUDIO_BASE_DATA_DIR="$DIR/data" \
      LABEL_STUDIO_USERNAME="$USER_" LABEL_STUDIO_PASSWORD="$PASS" LABEL_STUDIO_USER_TOKEN="$token" \
      LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true \
      SENTRY_DSN= FRONTEND_SENTRY_DSN= COLLECT_ANALYTICS=false LATEST_VERSION_CHECK=false \
    setsid "$VENV/bin/label-studio" start --no-browser --internal-host 127.0.0.1 -p "$PORT" \
      --data-dir "$DIR/data" --enable-legacy-api-token </dev/null >"$DIR/server.log" 2>&1 &
  local pid=$!
  echo "label-studio $pid $PORT" > "$PIDS"
  for _ in $(seq 600); do healthy && break; alive "$pid" || break; sleep 0.5; done
  healthy || { log "label-studio did not become healthy"; tail -30 "$DIR/server.log" >&2; exit 1; }
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Token $token" \
         "http://127.0.0.1:$PORT/api/current-user/whoami")
  [[ $code == 200 ]] || { log "token refused (HTTP $code): remove $DIR/data and $DIR/token and start again"; exit 1; }
  printf 'export FORGEML_LABEL_STUDIO_URL=http://127.0.0.1:%s FORGEML_LABEL_STUDIO_TOKEN=%s\n' "$PORT" "$token" > "$DIR/env"
  log "up: label-studio $pid on 127.0.0.1:$PORT"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
