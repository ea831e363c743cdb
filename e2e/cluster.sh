#!/usr/bin/env bash
# The project's own single-node Kubernetes: upstream binaries (built from the Go
# module proxy by e2e/lib/tools.sh, cached by version) started as host processes
# on Debian's containerd and runc. e2e/README.md explains the design.
#
#   e2e/cluster.sh up [--demo]   start it (or check it); idempotent, recovers after a crash or reboot;
#                                --demo: only what `make demo` needs (no kube-router, metrics-server,
#                                S3 or older store images unless already built)
#   e2e/cluster.sh status        prove it works: node, pod, DNS + Service, PVC, metrics
#   e2e/cluster.sh env           shell lines for: eval "$(e2e/cluster.sh env)"
#   e2e/cluster.sh s3-credentials  the local S3 server's root keys (KEY=value lines)
#   e2e/cluster.sh ingress       Traefik as ingress controller (lazy; see e2e/ingress.sh)
#   e2e/cluster.sh logs [NAME] [-f]   tails of all component logs, or one log
#   e2e/cluster.sh down [--purge]     stop it and clean the host; --purge also deletes its data
#
# CLUSTER=current uses the current kube context instead (e.g. kind): `up` and
# `status` only check it, `env` changes nothing.
# Env: APPSTACK_CACHE (build cache), APPSTACK_CLUSTER_DIR (state, default
# /var/lib/appstack-cluster), APPSTACK_NODE_IP (default: the default route's address).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E_DIR/.." && pwd)
CLUSTER_TEMPLATES=$E2E_DIR/cluster
CLUSTER=${CLUSTER:-local}

# shellcheck source=lib/tools.sh
source "$E2E_DIR/lib/tools.sh"
# shellcheck source=lib/cluster-common.sh
source "$E2E_DIR/lib/cluster-common.sh"
# shellcheck source=lib/cluster-pki.sh
source "$E2E_DIR/lib/cluster-pki.sh"
# shellcheck source=lib/cluster-control-plane.sh
source "$E2E_DIR/lib/cluster-control-plane.sh"
# shellcheck source=lib/cluster-node.sh
source "$E2E_DIR/lib/cluster-node.sh"
# shellcheck source=lib/cluster-addons.sh
source "$E2E_DIR/lib/cluster-addons.sh"
# shellcheck source=lib/cluster-down.sh
source "$E2E_DIR/lib/cluster-down.sh"
# shellcheck source=lib/cluster-status.sh
source "$E2E_DIR/lib/cluster-status.sh"
trap on_exit EXIT

K8S_BIN=$(tool_bin_dir kubernetes)
ETCD_BIN=$(tool_bin_dir etcd)
COREDNS_BIN=$(tool_bin_dir coredns)
METRICS_SERVER_BIN=$(tool_bin_dir metrics-server)
LOCAL_PATH_BIN=$(tool_bin_dir local-path-provisioner)
KUBE_ROUTER_BIN=$(tool_bin_dir kube-router)
VERSITYGW_BIN=$(tool_bin_dir versitygw)
HELM_BIN=$(tool_bin_dir helm)

# Debian packages the node needs (binaries named where a package may be absent).
NODE_PACKAGES=(containerd runc containernetworking-plugins iptables ipset conntrack openssl curl iproute2 util-linux kmod)

usage() {
  awk 'NR > 1 && !/^#/ {exit} NR > 1 && !/^# shellcheck/ {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"
  exit "${1:-0}"
}

need_root() {
  ((EUID == 0)) || die "run as root: the cluster starts containerd, a kubelet and sets up iptables"
}

ensure_node_packages() {
  local missing=() p
  for p in "${NODE_PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "  apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The tools of the parts the demo needs first, then (without --demo) the rest.
DEMO_TOOLS=(etcd kubernetes coredns local-path-provisioner helm)
ADDON_TOOLS=(kube-router metrics-server versitygw)
ensure_tools() {
  local profile=$1 missing=() t
  for t in "${DEMO_TOOLS[@]}"; do tool_built "$t" || missing+=("$t"); done
  if [[ $profile == full ]]; then
    for t in "${ADDON_TOOLS[@]}"; do tool_built "$t" || missing+=("$t"); done
  fi
  ((${#missing[@]})) || return 0
  command -v go >/dev/null || die "the Go toolchain is needed once to build the pinned Kubernetes binaries (go 1.24+ on PATH)"
  build_tools "${missing[@]}"
}

# The add-ons this `up` runs: all of them, or with --demo those already built.
wanted_addons() {
  local profile=$1 a
  for a in "${ADDONS[@]}"; do
    [[ $profile == full ]] || tool_built "$(addon_tool "$a")" && echo "$a"
  done
  return 0
}
addon_tool() { case $1 in s3) echo versitygw ;; *) echo "$1" ;; esac; }

# The core processes alive, the API server ready, the node Ready, the address unchanged.
core_healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do
    [[ " ${ADDONS[*]} " == *" $c "* ]] || proc_alive "$c" || return 1
  done
  [[ -f $PID_DIR/node-ip && $(<"$PID_DIR/node-ip") == "$(node_ip)" ]] || return 1
  kc get --raw /readyz >/dev/null 2>&1 && node_ready
}

# start_addons IP NAME...: starts the named add-ons that are not running.
start_addons() {
  local ip=$1 a
  shift
  for a in "$@"; do
    proc_alive "$a" && continue
    case $a in
      kube-router) step "NetworkPolicy engine (kube-router, firewall only)" start_network_policy ;;
      metrics-server) step "metrics-server and its APIService" start_metrics_server "$ip" ;;
      s3) step "S3 (versitygw over a directory, s3.kube-system.svc:$S3_PORT)" start_s3 "$ip" ;;
    esac
  done
}

with_lock() { # serializes up/down between concurrent callers (teammates, CI)
  mkdir -p "$CLUSTER_DIR"
  exec 8>"$CLUSTER_DIR/.lock"
  if ! flock -n 8; then
    log "waiting for another e2e/cluster.sh up/down to finish"
    flock 8
  fi
}

current_context_check() {
  local ctx
  ctx=$(kubectl config current-context 2>/dev/null) || die "CLUSTER=current, but kubectl has no current context"
  kubectl get --raw /readyz >/dev/null || die "CLUSTER=current: the API server of context '$ctx' does not answer"
  log "CLUSTER=current: using kube context '$ctx'"
}

cmd_up() {
  local profile=full addons images
  case ${1:-} in
    --demo) profile=demo ;;
    "") ;;
    *) usage 2 ;;
  esac
  if [[ $CLUSTER == current ]]; then
    current_context_check
    return
  fi
  need_root
  local t0=$SECONDS ip
  with_lock
  step "prerequisites (Debian packages)" ensure_node_packages
  images=("${DEMO_IMAGES[@]}")
  [[ $profile == full ]] && images+=("${MORE_IMAGES[@]}")
  mkdir -p "$CONF_DIR" "$LOG_DIR" "$PID_DIR"
  # The images need no cluster and spend their time downloading and unpacking
  # packages: build them while the Go tools compile; the import step below only
  # imports them (or builds, in the foreground, what this failed to).
  log "images: building ${images[*]} in the background (log: $LOG_DIR/images-build.log)"
  # (without the cluster lock's descriptor: a failed `up` must not leave it held)
  "$REPO_ROOT/e2e/images/build.sh" --no-import "${images[@]}" >"$LOG_DIR/images-build.log" 2>&1 8>&- &
  IMAGES_PID=$!
  step "tools (pinned Go builds, cached in $TOOLS_DIR)" ensure_tools "$profile"
  mapfile -t addons < <(wanted_addons "$profile")
  if core_healthy; then
    ip=$(node_ip)
    step "images (e2e/images/build.sh ${images[*]})" import_images "${images[@]}"
    start_addons "$ip" "${addons[@]}"
    log "cluster already up and healthy (KUBECONFIG=$ADMIN_KUBECONFIG)"
    return
  fi
  step "clean up what a previous run left" cluster_down
  ip=$(node_ip)
  step "host network (sysctls, $VOID_DEV, FORWARD rules)" host_network_up
  step "certificates and kubeconfigs" pki_ensure "$ip"
  step "etcd" start_etcd
  # Start containerd while the API server boots; both take a few seconds.
  step "kube-apiserver (starting)" start_apiserver "$ip"
  step "containerd" start_containerd
  step "containerd ready" wait_containerd
  step "images (e2e/images/build.sh ${images[*]})" import_images "${images[@]}"
  step "kube-apiserver ready" wait_apiserver
  step "kube-controller-manager and kube-scheduler" start_controllers
  step "add-on objects (RBAC, kube-dns, metrics APIService, StorageClass)" apply_addons "$ip"
  step "kubelet" start_kubelet "$ip"
  step "kube-proxy" start_kube_proxy "$ip"
  step "node $NODE_NAME Ready" wait_node_ready
  step "CoreDNS" start_coredns "$ip"
  step "PVC provisioner (local-path, StorageClass standard)" start_local_path_provisioner
  echo "$ip" >"$PID_DIR/node-ip"
  start_addons "$ip" "${addons[@]}"
  ((${#addons[@]} == ${#ADDONS[@]})) \
    || log "not started (their tools are not built; e2e/cluster.sh up adds them): $(printf '%s\n' "${ADDONS[@]}" "${addons[@]}" | sort | uniq -u | xargs)"
  log "cluster up in $((SECONDS - t0))s: eval \"\$(e2e/cluster.sh env)\"; kubectl get nodes"
}

cmd_down() {
  [[ $CLUSTER == current ]] && die "CLUSTER=current: not stopping a cluster this script did not start"
  need_root
  local purge=0
  [[ ${1:-} == --purge ]] && purge=1
  with_lock
  step "stop the cluster and clean the host" cluster_down
  if ((purge)); then
    step "delete the cluster's data ($CLUSTER_DIR)" rm -rf --one-file-system "$CLUSTER_DIR"
  fi
}

cmd_env() {
  if [[ $CLUSTER == current ]]; then
    echo "# CLUSTER=current: nothing to change, the current kube context is used"
    return
  fi
  printf 'export KUBECONFIG=%q\n' "$ADMIN_KUBECONFIG"
  # shellcheck disable=SC2016 # $PATH is for the caller's shell to expand
  printf 'export PATH=%q:%q:"$PATH"\n' "$K8S_BIN" "$HELM_BIN"
  printf 'export CONTAINERD_ADDRESS=%q\n' "$CONTAINERD_SOCK"
}

# The local S3 server's root keys (AWS_ACCESS_KEY_ID=..., AWS_SECRET_ACCESS_KEY=...),
# for tests that make a bucket and hand a stack its keys.
cmd_s3_credentials() {
  [[ $CLUSTER == local ]] || die "s3-credentials: only the local cluster runs an S3 server"
  [[ -r $CLUSTER_DIR/s3/credentials ]] || die "no S3 credentials yet: run e2e/cluster.sh up"
  cat "$CLUSTER_DIR/s3/credentials"
}

cmd_status() {
  if [[ $CLUSTER == current ]]; then
    KUBECTL=(kubectl)
  else
    [[ -f $ADMIN_KUBECONFIG ]] || die "no cluster at $CLUSTER_DIR: run e2e/cluster.sh up"
    KUBECTL=("$K8S_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG")
    local c down=() up=0 off=()
    for c in "${COMPONENTS[@]}"; do
      if proc_alive "$c"; then
        up=$((up + 1))
      elif [[ " ${ADDONS[*]} " == *" $c "* && ! -f $PID_DIR/$c.pid ]]; then
        off+=("$c") # never started (up --demo without its tools)
      else
        down+=("$c")
      fi
    done
    if ((${#down[@]})); then
      printf '  FAILED  %-44s\n' "processes running"
      printf '          not running: %s (e2e/cluster.sh logs NAME; e2e/cluster.sh up restarts)\n' "${down[*]}"
      return 1
    fi
    printf '  ok      %-44s\n' "processes running ($up${off[*]:+; not started: ${off[*]}})"
  fi
  cluster_status
}

cmd_logs() {
  local name=${1:-} follow=${2:-}
  if [[ -z $name ]]; then
    local c
    for c in "${COMPONENTS[@]}"; do
      [[ -f $LOG_DIR/$c.log ]] || continue
      printf '==> %s (%s)%s\n' "$c" "$LOG_DIR/$c.log" "$(proc_alive "$c" || echo ' NOT RUNNING')"
      tail -n 8 "$LOG_DIR/$c.log"
    done
    return
  fi
  [[ -f $LOG_DIR/$name.log ]] || die "no log $LOG_DIR/$name.log; components: ${COMPONENTS[*]}"
  if [[ $follow == -f ]]; then tail -n 50 -f "$LOG_DIR/$name.log"; else tail -n 200 "$LOG_DIR/$name.log"; fi
}

kubectl() { "$K8S_BIN/kubectl" "$@"; }
kc() { "$K8S_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
if [[ $CLUSTER == current ]]; then
  # Only the user's own kubectl and context, unless ours is all there is.
  kubectl() { if type -P kubectl >/dev/null; then command kubectl "$@"; else "$K8S_BIN/kubectl" "$@"; fi; }
fi
[[ $CLUSTER == local || $CLUSTER == current ]] || die "CLUSTER must be 'local' (default) or 'current', not '$CLUSTER'"

case ${1:-} in
  up) cmd_up "${2:-}" ;;
  down) cmd_down "${2:-}" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  s3-credentials) cmd_s3_credentials ;;
  ingress) exec "$E2E_DIR/ingress.sh" ;;
  logs) cmd_logs "${2:-}" "${3:-}" ;;
  -h | --help | help) usage ;;
  *) usage 2 ;;
esac
