# lib.sh - what the service scripts share: logging, liveness, starting a process in its own session and
# stopping it by its recorded PID. A script sets NAME (its log prefix), DIR (its state folder) and PORT,
# defines start and stop, sources this file and ends with `dispatch "$@"`.
# $DIR/pids holds one "process pid port" line per process the script started.
PIDS=$DIR/pids

log() { echo "[$NAME.sh] $*" >&2; }
alive() { [[ -n ${1:-} && -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
recorded_pid() { [[ -f $PIDS ]] && awk -v p="$1" '$1==p{print $2}' "$PIDS"; }

stop_recorded() {  # stop_recorded PROCESS: TERM, then KILL after 5 s, the recorded process; forget it
  [[ -f $PIDS ]] || { log "nothing to stop"; return 0; }
  local pid; pid=$(recorded_pid "$1")
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true  # it may exit between the check and the signal
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && { kill -KILL "$pid" 2>/dev/null || true; }
    log "stopped $1 $pid"
  fi
  rm -f "$PIDS"
}

already_up() {  # already_up PROCESS READY_COMMAND: true when the recorded process runs and is ready
  [[ -f $PIDS ]] || return 1
  local pid; pid=$(recorded_pid "$1")
  if alive "$pid" && $2; then log "already running: $1 $pid on 127.0.0.1:$PORT"; return 0; fi
  log "stale state, restarting"; stop
  return 1
}

launch() {  # launch PROCESS READY_COMMAND TENTHS COMMAND...: start COMMAND, wait up to TENTHS/10 s for READY
  local process=$1 ready=$2 tenths=$3; shift 3
  # setsid: its own session, so a test run's Ctrl-C does not take the shared server down
  setsid "$@" </dev/null >"$DIR/server.log" 2>&1 &
  local pid=$!
  echo "$process $pid $PORT" > "$PIDS"
  for _ in $(seq "$tenths"); do $ready && break; alive "$pid" || break; sleep 0.1; done
  $ready || { log "$process is not ready on 127.0.0.1:$PORT"; tail -20 "$DIR/server.log" >&2; stop; exit 1; }
}

dispatch() {
  case ${1:-} in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
  esac
}
