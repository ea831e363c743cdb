# shellcheck shell=bash
# shellcheck disable=SC2034 # settings, read by the other cluster-*.sh files
# Settings, output, templates and host processes of the local cluster.
# Sourced by e2e/cluster.sh.

CLUSTER_DIR=${APPSTACK_CLUSTER_DIR:-/var/lib/appstack-cluster}
PKI=$CLUSTER_DIR/pki
KUBECONFIG_DIR=$CLUSTER_DIR/kubeconfigs
ADMIN_KUBECONFIG=$CLUSTER_DIR/kubeconfig
LOG_DIR=$CLUSTER_DIR/logs
PID_DIR=$CLUSTER_DIR/run
CONF_DIR=$CLUSTER_DIR/config
CONTAINERD_RUN=/run/appstack/containerd
CONTAINERD_SOCK=$CONTAINERD_RUN/containerd.sock
CONTAINERD_STATE=$CONTAINERD_RUN/state
CNI_BIN_DIR=/usr/lib/cni

# Fixed by the team's interfaces (/tmp/interfaces.md): the operator and the
# tests rely on them.
NODE_NAME=${APPSTACK_NODE_NAME:-appstack-node}
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
CLUSTER_DNS=10.96.0.10
CLUSTER_DOMAIN=cluster.local
SANDBOX_IMAGE=appstack.local/pause:3.10
TOOLS_IMAGE=appstack.local/tools:1

# Host devices and ports of this cluster, apart from anything else on the host.
BRIDGE=appstack0
VOID_DEV=appstack-void
API_PORT=6443
# 53, as in any cluster: NetworkPolicies that allow DNS name port 53, and
# the node filters after the Service has translated the port.
DNS_PORT=53
DNS_HEALTH_PORT=10054
DNS_READY_PORT=10055
METRICS_PORT=4443
NETPOL_HEALTH_PORT=20244
# The S3 server, on the node address (Service s3.kube-system.svc:9000).
S3_PORT=9000

# Every host process, in start order; `down` stops them in reverse.
COMPONENTS=(etcd kube-apiserver containerd kube-controller-manager kube-scheduler
  kube-proxy kubelet coredns local-path-provisioner kube-router metrics-server s3)
# The ones the demo's story does not need (NetworkPolicy enforcement, metrics for
# the HPA, S3 for backups): `up --demo` starts them only when their tools are
# already built; a plain `up` builds and starts them (on a running cluster too).
ADDONS=(kube-router metrics-server s3)

log() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# step "what" command...: prints the step, runs it, prints its duration. A failure
# ends the script through set -e; the EXIT trap then names the failed step.
CURRENT_STEP=""
step() {
  local what=$1 t0=$SECONDS
  shift
  CURRENT_STEP=$what
  printf '==> %s\n' "$what"
  "$@"
  printf '<== %s: ok (%ss)\n' "$what" $((SECONDS - t0))
  CURRENT_STEP=""
}
on_exit() {
  local rc=$?
  if ((rc != 0)) && [[ -n $CURRENT_STEP ]]; then
    printf '<== %s: FAILED (exit %d). Logs: e2e/cluster.sh logs [component]; files in %s\n' \
      "$CURRENT_STEP" "$rc" "$LOG_DIR" >&2
  fi
}

# node_ip: the address of the interface holding the default route (no traffic
# is sent to find it). APPSTACK_NODE_IP overrides.
node_ip() {
  if [[ -n ${APPSTACK_NODE_IP:-} ]]; then
    echo "$APPSTACK_NODE_IP"
    return
  fi
  local dev ip
  dev=$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
  [[ -n $dev ]] || die "no default route to pick the node's address from; set APPSTACK_NODE_IP"
  ip=$(ip -4 -o addr show dev "$dev" scope global | awk '{split($4, a, "/"); print a[1]; exit}')
  [[ -n $ip ]] || die "interface $dev has no IPv4 address; set APPSTACK_NODE_IP"
  echo "$ip"
}

# render TEMPLATE: prints e2e/cluster/TEMPLATE with each @NAME@ replaced by the
# value of the shell variable NAME; an unknown @NAME@ is an error.
render() {
  local text name
  text=$(<"$CLUSTER_TEMPLATES/$1")
  while [[ $text =~ @([A-Z][A-Z0-9_]*)@ ]]; do
    name=${BASH_REMATCH[1]}
    [[ -v $name ]] || die "template $1 uses @$name@, which is not set"
    text=${text//"@$name@"/${!name}}
  done
  printf '%s\n' "$text"
}

# render_to TEMPLATE DEST: renders into a file, replacing it only on change.
render_to() {
  local tmp=$2.tmp
  render "$1" >"$tmp"
  if cmp -s "$tmp" "$2"; then rm -f "$tmp"; else mv "$tmp" "$2"; fi
}

# --- host processes ----------------------------------------------------------
# Each runs in its own session, logs to $LOG_DIR/NAME.log and has its pid in
# $PID_DIR/NAME.pid. A pid counts as ours only while that process's command line
# names our cluster dir or socket, so a pid reused after a reboot is never hit.

proc_owned() { # pid -> true when that process is one of this cluster's
  local cmd
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
  [[ $cmd == *"$CLUSTER_DIR/"* || $cmd == *"$CONTAINERD_RUN/"* ]]
}

proc_pid() { # name -> pid, if that process runs
  local f=$PID_DIR/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] && proc_owned "$pid" || return 1
  echo "$pid"
}

proc_alive() { proc_pid "$1" >/dev/null; }

# proc_start NAME COMMAND...: starts a host process; earlier logs move to
# NAME.log.1 .. NAME.log.3, so a failed run's logs outlive a restart or two.
proc_start() {
  local name=$1 n
  shift
  mkdir -p "$LOG_DIR" "$PID_DIR"
  for n in 2 1; do
    [[ -f $LOG_DIR/$name.log.$n ]] && mv -f "$LOG_DIR/$name.log.$n" "$LOG_DIR/$name.log.$((n + 1))"
  done
  [[ -f $LOG_DIR/$name.log ]] && mv -f "$LOG_DIR/$name.log" "$LOG_DIR/$name.log.1"
  # bash -c writes its own pid, then execs the command under that same pid.
  # shellcheck disable=SC2016 # expanded by that inner bash
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_DIR/$name.pid" "$@" \
    >"$LOG_DIR/$name.log" 2>&1 </dev/null 7>&- 8>&- 9>&- &
  local i
  for i in $(seq 50); do
    [[ -s $PID_DIR/$name.pid ]] && return 0
    sleep 0.1
  done
  die "$name did not start; see $LOG_DIR/$name.log"
}

# pid_wait_gone PID SECONDS: true once the process has exited.
pid_wait_gone() {
  local pid=$1 deadline=$((SECONDS + $2))
  while [[ -e /proc/$pid ]] && ! grep -qs '^State:.*Z' "/proc/$pid/status"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# proc_stop NAME [GRACE]: SIGTERM, then SIGKILL after GRACE seconds (default 10).
proc_stop() {
  local name=$1 grace=${2:-10} pid
  if pid=$(proc_pid "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    if ! pid_wait_gone "$pid" "$grace"; then
      warn "$name (pid $pid) ignored SIGTERM for ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      pid_wait_gone "$pid" 5 || warn "$name (pid $pid) is still there"
    fi
  fi
  rm -f "$PID_DIR/$name.pid"
}

# stray_pids: our processes without a pid file (a lost state dir, a crashed
# script), found by their command line naming our cluster dir or socket and
# their binary being one this cluster runs.
stray_pids() {
  local p exe
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    ((p == $$)) && continue
    exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
    case ${exe##*/} in
      etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy | coredns | \
        metrics-server | local-path-provisioner | kube-router | versitygw | containerd | containerd-shim-runc-v2) ;;
      *) continue ;;
    esac
    proc_owned "$p" && echo "$p"
  done
  return 0
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND until it succeeds.
wait_until() {
  local timeout=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      printf 'error: timed out after %ss waiting for %s\n' "$timeout" "$what" >&2
      return 1
    fi
    sleep 0.5
  done
}

# require_alive NAME: fails with the log's tail when a started process died.
require_alive() {
  proc_alive "$1" && return 0
  printf 'error: %s exited; last lines of %s:\n' "$1" "$LOG_DIR/$1.log" >&2
  tail -n 15 "$LOG_DIR/$1.log" >&2 || true
  return 1
}

# wait_ready NAME SECONDS COMMAND...: waits for COMMAND, failing early if NAME dies.
wait_ready() {
  local name=$1 timeout=$2 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    require_alive "$name" || return 1
    if ((SECONDS >= deadline)); then
      printf 'error: %s not ready after %ss; last lines of %s:\n' "$name" "$timeout" "$LOG_DIR/$name.log" >&2
      tail -n 15 "$LOG_DIR/$name.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}
