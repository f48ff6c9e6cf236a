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
NAME=s3
DIR=${FORGEML_S3_DIR:-${TMPDIR:-/tmp}/forgeml-s3}
PORT=${FORGEML_S3_PORT:-4571}
# shellcheck source=tests/services/lib.sh
source "$(dirname "$0")/lib.sh"
answers() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$PORT/" 2>/dev/null | grep -q -E '^[2-4][0-9][0-9]$'; }
has_moto() { (cd / && "$1" -c 'import moto.server, flask') >/dev/null 2>&1; }
stop() { stop_recorded moto; }

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
  if already_up moto answers; then write_env; return 0; fi
  local py; py=$(python_with_moto)
  launch moto answers 150 "$py" -m moto.server -H 127.0.0.1 -p "$PORT"
  write_env
  log "up: moto $(recorded_pid moto) on http://127.0.0.1:$PORT; source $DIR/env"
}

write_env() {
  cat > "$DIR/env" <<EOF
# S3-compatible endpoint on loopback (moto server mode, in memory), written by tests/services/s3.sh
export FORGEML_S3_ENDPOINT=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-testing}
EOF
}

dispatch "$@"
