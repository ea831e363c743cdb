# shellcheck shell=bash
# Stopping the local cluster and removing what it left on the host: processes
# (by recorded pid, or found by our paths in their command line), pod processes
# (by the kubepods cgroups), mounts, network devices, iptables rules, sysctls.
# Safe to run at any time, also after a crash or a reboot. Sourced by cluster.sh.

_kubepods_procs() { # pids of every pod process, from the kubelet's cgroups
  local f
  for f in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $f ]] || continue
    find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done | sort -un
}

# stop_pods: SIGTERM to every pod process, SIGKILL after a grace period; what a
# node shutdown does (PostgreSQL gets to checkpoint).
stop_pods() {
  local pids deadline=$((SECONDS + 10))
  pids=$(_kubepods_procs)
  [[ -n $pids ]] || return 0
  # shellcheck disable=SC2086 # a list of pids
  kill -TERM $pids 2>/dev/null || true
  while [[ -n $(_kubepods_procs) ]] && ((SECONDS < deadline)); do sleep 0.3; done
  pids=$(_kubepods_procs)
  # shellcheck disable=SC2086
  [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
  deadline=$((SECONDS + 5))
  while [[ -n $(_kubepods_procs) ]] && ((SECONDS < deadline)); do sleep 0.2; done
  [[ -z $(_kubepods_procs) ]] || warn "some pod processes survived SIGKILL: $(_kubepods_procs | tr '\n' ' ')"
}

_remove_pod_cgroups() {
  local f
  for f in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $f ]] || continue
    find "$f" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  return 0
}

kill_strays() {
  local p
  for p in $(stray_pids); do
    kill -KILL "$p" 2>/dev/null || true
    pid_wait_gone "$p" 5 || warn "pid $p ($(readlink "/proc/$p/exe" 2>/dev/null)) survived SIGKILL"
  done
}

unmount_all() {
  local m
  # Deepest first; lazily when busy, so nothing is ever deleted through a mount.
  while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || warn "cannot unmount $m"
  done < <(awk -v a="$CLUSTER_DIR/" -v b="$CONTAINERD_RUN/" \
    'index($5, a) == 1 || index($5, b) == 1 {print $5}' /proc/self/mountinfo | sort -ru)
}

# _iptables_drop_refs CMD TABLE REGEX: deletes the rules whose text matches.
_iptables_drop_refs() {
  local cmd=$1 table=$2 re=$3 rule
  while IFS= read -r rule; do
    eval "$cmd -t $table ${rule/#-A/-D}" 2>/dev/null || true
  done < <("$cmd" -t "$table" -S 2>/dev/null | grep -E -- "^-A .*$re" || true)
}

iptables_cleanup() {
  # kube-proxy removes its own rules (all modes); the rest is by name.
  if [[ -x ${K8S_BIN:-}/kube-proxy ]]; then "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  # kube-router's firewall rules and ipsets.
  if [[ -x ${KUBE_ROUTER_BIN:-}/kube-router ]]; then "$KUBE_ROUTER_BIN/kube-router" --cleanup-config >/dev/null 2>&1 || true; fi
  local cmd table chain
  for cmd in iptables ip6tables; do
    command -v "$cmd" >/dev/null || continue
    for table in filter nat mangle; do
      _iptables_drop_refs "$cmd" "$table" '-j (KUBE-|APPSTACK-)'
      if [[ $table == nat ]]; then
        # portmap rules of our CNI network, named in their comments.
        for chain in $("$cmd" -t nat -S 2>/dev/null | grep -F 'name: \"appstack\"' | grep -oE -- '-j CNI-DN-[0-9a-f]+' | awk '{print $2}' | sort -u); do
          _iptables_drop_refs "$cmd" nat "-j $chain( |\$)"
          "$cmd" -t nat -F "$chain" 2>/dev/null || true
          "$cmd" -t nat -X "$chain" 2>/dev/null || true
        done
      fi
      for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|APPSTACK-)/ {print $2}'); do
        "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|APPSTACK-)/ {print $2}'); do
        "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

host_network_down() {
  ip link del "$BRIDGE" 2>/dev/null || true
  ip link del "$VOID_DEV" 2>/dev/null || true
  rm -rf "$CLUSTER_DIR/cni/ipam"
  iptables_cleanup
  local f key
  for f in "$PID_DIR"/sysctl.*; do
    [[ -f $f ]] || continue
    key=${f##*/sysctl.}
    cat "$f" >"/proc/sys/${key//.//}" 2>/dev/null || true
    rm -f "$f"
  done
}

# cluster_down: stops everything in reverse start order and cleans the host.
# The cluster's data (etcd, volumes, images, certificates) stays.
cluster_down() {
  local c
  for c in s3 local-path-provisioner metrics-server coredns kube-router kubelet; do proc_stop "$c"; done
  stop_pods
  proc_stop containerd
  for c in kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd; do proc_stop "$c" 20; done
  kill_strays
  unmount_all
  rm -rf --one-file-system "$CONTAINERD_STATE"
  rm -f "$CONTAINERD_SOCK" "$CONTAINERD_SOCK.ttrpc"
  _remove_pod_cgroups
  host_network_down
  rm -f "$PID_DIR"/*.pid "$PID_DIR/node-ip"
}
