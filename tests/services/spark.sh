#!/usr/bin/env bash
# spark.sh start|stop - a real Apache Spark standalone cluster on 127.0.0.1 for the test suite: one master and
# $FORGEML_SPARK_WORKERS worker JVMs, run from the pip `pyspark` package (it bundles Spark's jars and
# bin/spark-class; Java 17 or newer must be installed: apt openjdk-17-jre-headless).
#
# The pip package has no sbin/start-master.sh, so each daemon is `spark-class ...Master` / `...Worker`, which
# ends in `exec java`: the PID recorded is the JVM, stopped by PID with SIGTERM (it exits within a second).
# SPARK_LOCAL_IP=127.0.0.1 binds every listener (RPC, web UIs, REST) to loopback; drivers set
# spark.driver.host/bindAddress to 127.0.0.1 too, else executors call them back on the routable address.
# Idempotent: `start` does nothing when the recorded JVMs are alive and the master reports its workers ALIVE.
# Writes $DIR/env: FORGEML_SPARK_MASTER (spark://127.0.0.1:PORT), JAVA_HOME, SPARK_LOCAL_IP.
# pyspark comes from the Python on PATH when it has it (drivers need the same version), else its own venv.
# Knobs: FORGEML_SPARK_DIR [${TMPDIR:-/tmp}/forgeml-spark]  FORGEML_SPARK_PORT [7377] (master web UI +1000,
#        worker N +1000+N)  FORGEML_SPARK_WORKERS [1]  FORGEML_SPARK_WORKER_CORES [2]
#        FORGEML_SPARK_WORKER_MEMORY [1g]  FORGEML_SERVICES_INSTALL [1] (pip install pyspark into $DIR/venv)
set -euo pipefail
DIR=${FORGEML_SPARK_DIR:-${TMPDIR:-/tmp}/forgeml-spark}
PORT=${FORGEML_SPARK_PORT:-7377}
UIPORT=$((PORT + 1000))
NW=${FORGEML_SPARK_WORKERS:-1}
PIDS=$DIR/pids
log() { echo "[spark.sh] $*" >&2; }
alive() { [[ -n ${1:-} && -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
has_pyspark() { (cd / && "$1" -c 'import pyspark') >/dev/null 2>&1; }
alive_workers() {
  curl -sf -m 2 "http://127.0.0.1:$UIPORT/json/" 2>/dev/null \
    | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["aliveworkers"])' 2>/dev/null || echo -1
}

stop() {
  [[ -f $PIDS ]] || { log "nothing to stop"; return 0; }
  local lines l name pid
  mapfile -t lines < <(tac "$PIDS")   # workers first, the master last
  for l in "${lines[@]}"; do
    read -r name pid <<<"$l"
    alive "$pid" || continue
    kill -TERM "$pid"
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then log "killing $name $pid"; kill -KILL "$pid"; fi
  done
  rm -f "$PIDS"
  log "stopped"
}

python_with_pyspark() {
  local py; py=$(command -v python3 || true)
  if [[ -n $py ]] && has_pyspark "$py"; then echo "$py"; return 0; fi
  if has_pyspark "$DIR/venv/bin/python"; then echo "$DIR/venv/bin/python"; return 0; fi
  [[ ${FORGEML_SERVICES_INSTALL:-1} == 1 ]] || { log "pyspark is not installed (pip install 'forgeml[spark]')"; return 1; }
  log "pip installing pyspark into $DIR/venv"
  python3 -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install -q 'pyspark>=4,<5' >&2
  echo "$DIR/venv/bin/python"
}

write_env() {
  cat > "$DIR/env" <<ENV
# Spark standalone on loopback, written by tests/services/spark.sh
export FORGEML_SPARK_MASTER=spark://127.0.0.1:$PORT JAVA_HOME=$JAVA_HOME SPARK_LOCAL_IP=127.0.0.1
ENV
}

start() {
  mkdir -p "$DIR/work"
  command -v java >/dev/null || { log "no java on PATH (apt install openjdk-17-jre-headless)"; exit 1; }
  PY=$(python_with_pyspark)
  JAVA_HOME=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}
  local home; home=$(cd / && "$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
  export JAVA_HOME SPARK_HOME=$home SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR=$DIR SPARK_NO_DAEMONIZE=1
  export PYSPARK_PYTHON=$PY   # executors' Python workers match the driver's interpreter
  if [[ -f $PIDS ]]; then
    local allok=1
    while read -r _ pid; do alive "$pid" || allok=0; done < "$PIDS"
    if [[ $allok == 1 && $(alive_workers) == "$NW" ]]; then
      log "already running: $(tr '\n' ' ' < "$PIDS")"; write_env; return 0
    fi
    log "stale or different cluster recorded; stopping it"; stop
  fi
  # setsid: its own session, so a test run's Ctrl-C does not take the shared cluster down
  setsid "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$PORT" \
    --webui-port "$UIPORT" </dev/null >"$DIR/master.log" 2>&1 &
  local mp=$! i
  echo "spark-master $mp" > "$PIDS"
  for _ in $(seq 240); do [[ $(alive_workers) != -1 ]] && break; alive "$mp" || break; sleep 0.25; done
  [[ $(alive_workers) != -1 ]] || { log "master not up"; tail -30 "$DIR/master.log" >&2; stop; exit 1; }
  for i in $(seq 1 "$NW"); do
    setsid "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 \
      --cores "${FORGEML_SPARK_WORKER_CORES:-2}" --memory "${FORGEML_SPARK_WORKER_MEMORY:-1g}" \
      --webui-port $((UIPORT + i)) --work-dir "$DIR/work" "spark://127.0.0.1:$PORT" \
      </dev/null >"$DIR/worker-$i.log" 2>&1 &
    echo "spark-worker-$i $!" >> "$PIDS"
  done
  for _ in $(seq 360); do [[ $(alive_workers) == "$NW" ]] && break; sleep 0.25; done
  [[ $(alive_workers) == "$NW" ]] || { log "workers did not register"; tail -30 "$DIR"/worker-*.log >&2; stop; exit 1; }
  write_env
  log "up: master + $NW worker(s) at spark://127.0.0.1:$PORT; source $DIR/env"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
