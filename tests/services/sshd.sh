#!/usr/bin/env bash
# sshd.sh start|stop - a real OpenSSH server on 127.0.0.1 with key-only login, for the test suite.
#
# State folder (FORGEML_SSHD_DIR): id_ed25519 (client key), known_hosts, ssh_config (`ssh -F
# DIR/ssh_config forgeml-test`), user (the login name), pids, sshd.log.
# Idempotent: `start` does nothing when the recorded sshd accepts our key; stopped by PID.
# Knobs: FORGEML_SSHD_DIR [${TMPDIR:-/tmp}/forgeml-sshd]  FORGEML_SSHD_PORT [2222]
#        FORGEML_SERVICES_INSTALL [1] (apt-get install openssh-server when it is missing)
set -euo pipefail
DIR=${FORGEML_SSHD_DIR:-${TMPDIR:-/tmp}/forgeml-sshd}
PORT=${FORGEML_SSHD_PORT:-2222}
PIDS=$DIR/pids
USER_NAME=$(id -un)
log() { echo "[sshd.sh] $*" >&2; }
alive() { [[ -n ${1:-} && -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
probe() { timeout 10 ssh -F "$DIR/ssh_config" forgeml-test true >/dev/null 2>&1; }

stop() {
  [[ -f $PIDS ]] || { log "nothing to stop"; return 0; }
  local pid; pid=$(awk '$1=="sshd"{print $2}' "$PIDS")
  if alive "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid"
    log "stopped sshd $pid"
  fi
  rm -f "$PIDS"
}

start() {
  if [[ ${FORGEML_SERVICES_INSTALL:-1} == 1 ]] && { [[ ! -x /usr/sbin/sshd ]] || ! command -v ssh >/dev/null; }; then
    log "installing openssh-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
  fi
  if [[ -f $PIDS ]]; then
    local pid; pid=$(awk '$1=="sshd"{print $2}' "$PIDS")
    if alive "$pid" && probe; then log "already running: sshd $pid on 127.0.0.1:$PORT"; return 0; fi
    log "stale state, restarting"; stop
  fi
  mkdir -p "$DIR"; chmod 700 "$DIR"
  # sshd refuses to start without its privilege-separation folder; systemd usually makes it.
  if [[ $(id -u) == 0 ]]; then mkdir -p /run/sshd; chmod 755 /run/sshd; fi
  [[ -f $DIR/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -C forgeml-test-host -f "$DIR/ssh_host_ed25519_key"
  [[ -f $DIR/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C forgeml-test-client -f "$DIR/id_ed25519"
  cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"; chmod 600 "$DIR/authorized_keys"
  echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DIR/ssh_host_ed25519_key.pub")" > "$DIR/known_hosts"
  echo "$USER_NAME" > "$DIR/user"
  cat > "$DIR/sshd_config" <<CONF
# loopback-only, key-only sshd for the forgeml test suite
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
# PAM is not needed for key logins and can fail outside a real login environment.
UsePAM no
# The key files live under a world-writable temp folder, which StrictModes rejects.
StrictModes no
Subsystem sftp internal-sftp
PrintMotd no
LogLevel VERBOSE
MaxStartups 100:30:200
MaxSessions 100
CONF
  cat > "$DIR/ssh_config" <<CONF
Host forgeml-test
  HostName 127.0.0.1
  Port $PORT
  User $USER_NAME
  IdentityFile $DIR/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $DIR/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
CONF
  /usr/sbin/sshd -t -f "$DIR/sshd_config"
  # sshd re-executes itself per connection, so it must be started by absolute path.
  rm -f "$DIR/sshd.pid"
  /usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/sshd.log" </dev/null
  for _ in $(seq 50); do [[ -s $DIR/sshd.pid ]] && break; sleep 0.1; done
  [[ -s $DIR/sshd.pid ]] || { log "sshd did not write its pid file"; tail "$DIR/sshd.log" >&2; exit 1; }
  echo "sshd $(cat "$DIR/sshd.pid")" > "$PIDS"
  for _ in $(seq 50); do probe && break; sleep 0.1; done
  probe || { log "sshd does not accept our key"; tail "$DIR/sshd.log" >&2; exit 1; }
  log "up: sshd $(cat "$DIR/sshd.pid") on 127.0.0.1:$PORT (ssh -F $DIR/ssh_config forgeml-test)"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
