#!/usr/bin/env bash
# slurm.sh start|stop - a real one-node Slurm cluster (munged, slurmctld, slurmd) on loopback.
#
# The node `localhost` has 2 fake GPUs (gres gpu:2; character devices, so Slurm sets
# CUDA_VISIBLE_DEVICES). No accounting: read job states with `scontrol show job` (finished
# jobs stay visible for 10 minutes). Clients need SLURM_CONF=DIR/slurm.conf (see DIR/env.sh).
# Needs root (munged runs as the munge user; no systemd). Idempotent; stopped by PID.
# Knobs: FORGEML_SLURM_DIR [${TMPDIR:-/tmp}/forgeml-slurm]  FORGEML_SLURM_GPUS [2]
#        FORGEML_SLURM_CTLD_PORT [6817]  FORGEML_SLURM_SLURMD_PORT [6818]
#        FORGEML_SERVICES_INSTALL [1] (apt-get install the Slurm packages when missing)
set -euo pipefail
DIR=${FORGEML_SLURM_DIR:-${TMPDIR:-/tmp}/forgeml-slurm}
NGPU=${FORGEML_SLURM_GPUS:-2}
CTLD_PORT=${FORGEML_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${FORGEML_SLURM_SLURMD_PORT:-6818}
SOCK=/run/munge/munge.socket.2
PIDS=$DIR/pids
export SLURM_CONF=$DIR/slurm.conf
log() { echo "[slurm.sh] $*" >&2; }
alive() { [[ -n ${1:-} && -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
node_ready() { timeout 5 sinfo -h -N -o %T 2>/dev/null | grep -Eq '^(idle|mixed|alloc)'; }
munge_ok() { munge -n -S "$SOCK" 2>/dev/null | unmunge -S "$SOCK" >/dev/null 2>&1; }

stop() {
  [[ -f $PIDS ]] || { log "nothing to stop"; return 0; }
  # cancel jobs first so no job processes outlive slurmd
  if [[ -f $SLURM_CONF ]]; then
    local jobs; jobs=$(timeout 5 squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then timeout 5 scancel $jobs || true; sleep 1; fi
  fi
  local lines; mapfile -t lines < <(tac "$PIDS")
  for l in "${lines[@]}"; do
    read -r name pid <<<"$l"
    if alive "$pid"; then kill -TERM "$pid"; log "stopped $name $pid"; fi
  done
  for l in "${lines[@]}"; do
    read -r name pid <<<"$l"
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid"; fi
  done
  rm -f "$PIDS"
}

start() {
  local missing=0
  for b in slurmctld slurmd sbatch munged; do command -v $b >/dev/null || missing=1; done
  if [[ ${FORGEML_SERVICES_INSTALL:-1} == 1 && $missing == 1 ]]; then
    log "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
  fi
  if [[ -f $PIDS ]]; then
    local all_alive=1
    while read -r _ pid; do alive "$pid" || all_alive=0; done < "$PIDS"
    if [[ $all_alive == 1 ]] && node_ready; then
      log "already running: $(tr '\n' ' ' < "$PIDS")"; return 0
    fi
    log "stale state, restarting"; stop
  fi

  rm -rf "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/munge"
  mkdir -p "$DIR"/{state,spool,log,munge}
  chmod 755 "$DIR"
  # munged insists that its folders belong to it; the socket folder must be world-executable.
  chown munge:munge "$DIR/munge"; chmod 755 "$DIR/munge"

  # RealMemory above what slurmd measures drains the node, so take slurmd's own figure.
  local mem ncpu gres_types="" gres_node=""
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  ncpu=$(nproc)
  if (( NGPU > 0 )); then
    gres_types="GresTypes=gpu"; gres_node="Gres=gpu:$NGPU"
    # gres/gpu needs one device file per GPU, and only character devices make Slurm set
    # CUDA_VISIBLE_DEVICES: /dev/null clones stand in for the GPUs.
    for ((i = 0; i < NGPU; i++)); do rm -f "$DIR/gpu$i"; mknod -m 666 "$DIR/gpu$i" c 1 3; done
    printf 'AutoDetect=off\nNodeName=localhost Name=gpu File=%s/gpu[0-%d]\n' "$DIR" $((NGPU - 1)) > "$DIR/gres.conf"
  else
    : > "$DIR/gres.conf"
  fi
  cat > "$SLURM_CONF" <<CONF
# one-node Slurm for the forgeml test suite
ClusterName=forgeml
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
MpiDefault=none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default every job takes the whole node's memory
DefMemPerCPU=256
ReturnToService=2
MailProg=/bin/true
# keep finished jobs visible to 'scontrol show job' for 10 minutes (there is no sacct)
MinJobAge=600
SchedulerParameters=sched_interval=2
$gres_types
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$mem $gres_node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  echo "export SLURM_CONF=$SLURM_CONF" > "$DIR/env.sh"
  echo "$NGPU" > "$DIR/gpus"

  : > "$PIDS"
  if munge_ok; then
    log "reusing the munged already answering on $SOCK"
  else
    install -d -o munge -g munge -m 0755 "$(dirname "$SOCK")"
    runuser -u munge -- mungekey -c -k "$DIR/munge/munge.key"
    runuser -u munge -- munged -f --socket="$SOCK" --key-file="$DIR/munge/munge.key" \
      --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
      --seed-file="$DIR/munge/munged.seed"
    for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
    munge_ok || { log "munged does not answer"; tail -3 "$DIR/munge/munged.log" >&2; exit 1; }
    echo "munged $(cat "$DIR/munge/munged.pid")" >> "$PIDS"
  fi

  # -c: ignore saved state; detached stdio so a CI step does not hang on an inherited pipe.
  slurmctld -c -f "$SLURM_CONF" </dev/null >"$DIR/log/slurmctld.out" 2>&1
  local up=0
  for _ in $(seq 100); do
    if scontrol ping 2>/dev/null | grep -q 'is UP'; then up=1; break; fi; sleep 0.1
  done
  [[ $up == 1 ]] || { log "slurmctld did not come up"; tail -5 "$DIR/log/slurmctld.log" >&2; exit 1; }
  echo "slurmctld $(cat "$DIR/slurmctld.pid")" >> "$PIDS"
  # -N localhost: the machine's host name is not the node name.
  slurmd -N localhost -f "$SLURM_CONF" </dev/null >"$DIR/log/slurmd.out" 2>&1
  for _ in $(seq 100); do [[ -s $DIR/slurmd.pid ]] && break; sleep 0.1; done
  [[ -s $DIR/slurmd.pid ]] || { log "slurmd did not start"; tail -5 "$DIR/log/slurmd.log" >&2; exit 1; }
  echo "slurmd $(cat "$DIR/slurmd.pid")" >> "$PIDS"
  for _ in $(seq 300); do node_ready && break; sleep 0.1; done
  node_ready || { log "node not ready; logs in $DIR/log"; scontrol show node localhost >&2 || true; exit 1; }
  log "up: $(tr '\n' ' ' < "$PIDS")(SLURM_CONF=$SLURM_CONF)"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
