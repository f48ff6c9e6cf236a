#!/usr/bin/env bash
# ray.sh start|stop - a real Ray cluster on 127.0.0.1 for the test suite: a head node (GCS, dashboard with the
# Job Submission API) and $FORGEML_RAY_WORKERS worker nodes, each with its own raylet and object store.
#
# Every listener stays on loopback thanks to two Ray behaviours:
#  1. Ray replaces a node IP of 127.0.0.1 by the machine's routable address and then binds 0.0.0.0, unless
#     RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (its single-machine switch, honoured on Linux): set for the head.
#  2. A worker node refuses that switch, and joining "127.0.0.1:PORT" is rewritten to the routable address;
#     it joins through a host NAME that resolves to 127.0.0.1 instead (the hostname when /etc/hosts maps it
#     there, else the alias forgeml-ray-loopback, added to /etc/hosts), and then binds loopback too.
# All nodes share one temp dir, so job logs read through any node's agent are complete. They then also share
# the runtime_resources folder: a node fetching a working_dir package that another node already unpacked first
# deletes that folder, and a job just started from it there loses its cwd (rare: a parallel study's first
# trials on both nodes at once). A per-node --temp-dir avoids that but loses the logs of drivers on worker nodes.
# Each node is one `setsid ray start --block` process, stopped by PID with SIGTERM (it drains its node);
# leftovers in its session are killed by PID. Never `ray stop`: it kills every Ray process by name.
# Idempotent: `start` does nothing when the recorded nodes are alive and the head answers.
# Writes $DIR/env: FORGEML_RAY_DASHBOARD (Job Submission API), RAY_ADDRESS and the loopback switch for clients.
# Ray comes from the Python on PATH when it has ray[default], otherwise from its own venv under $DIR.
# Knobs: FORGEML_RAY_DIR [${TMPDIR:-/tmp}/forgeml-ray]  FORGEML_RAY_PORT [6386] (GCS; Jobs API +1880, client +16616, agents +46080)
#        FORGEML_RAY_WORKERS [1]  FORGEML_RAY_CPUS [2] (head)  FORGEML_RAY_WORKER_CPUS [1]
#        FORGEML_RAY_WORKER_GPUS [1]: GPUs each worker node DECLARES to Ray (none need exist: Ray then only
#        counts them and sets CUDA_VISIBLE_DEVICES for the jobs it places there)
#        FORGEML_SERVICES_INSTALL [1] (pip install ray[default] into $DIR/venv when it is missing)
set -euo pipefail
DIR=${FORGEML_RAY_DIR:-${TMPDIR:-/tmp}/forgeml-ray}
PORT=${FORGEML_RAY_PORT:-6386}
DPORT=$((PORT + 1880))
APORT=$((PORT + 46080))
NW=${FORGEML_RAY_WORKERS:-1}
PIDS=$DIR/pids
log() { echo "[ray.sh] $*" >&2; }
alive() { [[ -n ${1:-} && -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
ok() { curl -sf -m 2 "$1" >/dev/null 2>&1; }
head_ready() { ok "http://127.0.0.1:$DPORT/api/gcs_healthz" && ok "http://127.0.0.1:$APORT/api/local_raylet_healthz"; }
session() { { ps -s "$1" -o pid=,stat= 2>/dev/null || true; } | awk '$2 !~ /^Z/ {print $1}'; }
has_ray() { (cd / && "$1" -c 'import ray, aiohttp_cors, ray.job_submission') >/dev/null 2>&1; }

stop() {
  [[ -f $PIDS ]] || { log "nothing to stop"; return 0; }
  local lines l name pid left
  mapfile -t lines < <(tac "$PIDS")   # worker nodes first, the head last
  for l in "${lines[@]}"; do
    read -r name pid <<<"$l"
    alive "$pid" && kill -TERM "$pid"
    for _ in $(seq 80); do [[ -z $(session "$pid") ]] && break; sleep 0.25; done
  done
  for l in "${lines[@]}"; do
    read -r name pid <<<"$l"
    left=$(session "$pid")
    if [[ -n $left ]]; then log "killing what $name left: $left"; kill -KILL $left 2>/dev/null || true; fi
  done
  rm -f "$PIDS"
  log "stopped"
}

python_with_ray() {
  local py; py=$(command -v python3 || true)
  if [[ -n $py ]] && has_ray "$py"; then echo "$py"; return 0; fi
  if has_ray "$DIR/venv/bin/python"; then echo "$DIR/venv/bin/python"; return 0; fi
  [[ ${FORGEML_SERVICES_INSTALL:-1} == 1 ]] || { log "ray[default] is not installed"; return 1; }
  log "pip installing ray[default] into $DIR/venv"
  python3 -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install -q 'ray[default]>=2.40' >&2
  echo "$DIR/venv/bin/python"
}

join_host() {
  local h; h=$(hostname)
  if [[ $h != localhost && $(getent ahostsv4 "$h" | awk 'NR==1{print $1}') == 127.0.0.1 ]]; then echo "$h"; return; fi
  grep -qw forgeml-ray-loopback /etc/hosts || echo "127.0.0.1 forgeml-ray-loopback" >> /etc/hosts
  echo forgeml-ray-loopback
}

start() {
  mkdir -p "$DIR"
  if [[ -f $PIDS ]]; then
    local allok=1 have
    while read -r _ pid; do alive "$pid" || allok=0; done < "$PIDS"
    have=$(grep -c '^ray-worker' "$PIDS" || true)
    if [[ $allok == 1 && $have == "$NW" ]] && head_ready; then log "already running: $(tr '\n' ' ' < "$PIDS")"; write_env; return 0; fi
    log "stale or different cluster recorded; stopping it"; stop
  fi
  local py ray; py=$(python_with_ray); ray=$(dirname "$py")/ray
  [[ -x $ray ]] || { log "no ray command beside $py"; exit 1; }
  export RAY_USAGE_STATS_ENABLED=0 PATH=$(dirname "$py"):$PATH   # job entrypoints' python = this one
  RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 setsid "$ray" start --head --block --node-ip-address=127.0.0.1 \
    --port="$PORT" --dashboard-host=127.0.0.1 --dashboard-port="$DPORT" --dashboard-agent-listen-port="$APORT" \
    --ray-client-server-port=$((PORT + 16616)) --num-cpus="${FORGEML_RAY_CPUS:-2}" --num-gpus=0 \
    --object-store-memory=$((256 * 1024 * 1024)) --temp-dir="$DIR/tmp" --disable-usage-stats \
    </dev/null >"$DIR/head.log" 2>&1 &
  local hp=$!
  echo "ray-head $hp" > "$PIDS"
  for _ in $(seq 240); do head_ready && break; alive "$hp" || break; sleep 0.25; done
  head_ready || { log "head not ready"; tail -30 "$DIR/head.log" >&2; stop; exit 1; }
  local join i wp; join=$(join_host)
  for i in $(seq 1 "$NW"); do
    setsid "$ray" start --block --address="$join:$PORT" --num-cpus="${FORGEML_RAY_WORKER_CPUS:-1}" \
      --num-gpus="${FORGEML_RAY_WORKER_GPUS:-1}" \
      --dashboard-agent-listen-port=$((APORT + i)) --object-store-memory=$((128 * 1024 * 1024)) \
      --disable-usage-stats </dev/null >"$DIR/worker-$i.log" 2>&1 &
    wp=$!
    echo "ray-worker-$i $wp" >> "$PIDS"
    for _ in $(seq 240); do ok "http://127.0.0.1:$((APORT + i))/api/local_raylet_healthz" && break; alive "$wp" || break; sleep 0.25; done
    ok "http://127.0.0.1:$((APORT + i))/api/local_raylet_healthz" || { log "worker node $i not ready"; tail -30 "$DIR/worker-$i.log" >&2; stop; exit 1; }
  done
  local n
  for _ in $(seq 60); do
    n=$(curl -sf -m 2 "http://127.0.0.1:$DPORT/nodes?view=summary" | "$py" -c 'import json,sys; d=json.load(sys.stdin)["data"]["summary"]; print(sum(1 for n in d if n["raylet"]["state"]=="ALIVE"))' 2>/dev/null || echo 0)
    [[ $n == $((NW + 1)) ]] && break; sleep 0.5
  done
  write_env
  log "up: head + $NW worker node(s), Jobs API http://127.0.0.1:$DPORT; source $DIR/env"
}

write_env() {
  cat > "$DIR/env" <<ENV
# Ray on loopback, written by tests/services/ray.sh
export FORGEML_RAY_DASHBOARD=http://127.0.0.1:$DPORT RAY_ADDRESS=127.0.0.1:$PORT
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0
ENV
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
