# shellcheck shell=bash
# The node: host network settings, containerd, CNI, kubelet and kube-proxy.
# Sourced by cluster.sh.

# Bridged pod traffic must pass iptables (Service DNAT between pods on one
# bridge) and the host must route between the bridge and Service addresses.
SYSCTLS=(net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1)

host_network_up() {
  local kv key path
  modprobe br_netfilter 2>/dev/null || true
  modprobe overlay 2>/dev/null || true
  [[ -d /proc/sys/net/bridge ]] || die "br_netfilter is missing (no /proc/sys/net/bridge): load the br_netfilter module"
  mkdir -p "$PID_DIR"
  for kv in "${SYSCTLS[@]}"; do
    key=${kv%%=*}
    path=/proc/sys/${key//.//}
    # Remember the host's value once, so `down` can put it back.
    [[ -f $PID_DIR/sysctl.$key ]] || cat "$path" >"$PID_DIR/sysctl.$key"
    echo "${kv#*=}" >"$path"
  done
  # Addresses of the cluster's ranges that match nothing (no pod, no Service
  # rule) end on this port-less bridge instead of the default route: no packet
  # for a cluster address ever leaves the machine. (A bridge, because these
  # kernels have no dummy device.)
  if ! ip link show "$VOID_DEV" >/dev/null 2>&1; then
    ip link add "$VOID_DEV" type bridge
  fi
  ip link set "$VOID_DEV" up
  ip route replace "$SERVICE_CIDR" dev "$VOID_DEV"
  ip route replace "$POD_CIDR" dev "$VOID_DEV"
  # Pods talk to each other, to Services and to this host, never beyond it;
  # accepted explicitly so a host FORWARD policy of DROP (Docker's) does not
  # break pod-to-Service traffic.
  iptables -N APPSTACK-FORWARD 2>/dev/null || iptables -F APPSTACK-FORWARD
  iptables -A APPSTACK-FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  iptables -A APPSTACK-FORWARD -s "$POD_CIDR" -j REJECT --reject-with icmp-net-prohibited
  iptables -A APPSTACK-FORWARD -d "$POD_CIDR" -o "$BRIDGE" -j ACCEPT
  iptables -C FORWARD -j APPSTACK-FORWARD 2>/dev/null || iptables -I FORWARD 1 -j APPSTACK-FORWARD
}

start_containerd() {
  mkdir -p "$CLUSTER_DIR/containerd" "$CLUSTER_DIR/cni/net.d" "$CONTAINERD_RUN"
  render_to containerd.toml "$CONF_DIR/containerd.toml"
  # The CNI config is in place before containerd starts, so the node reports
  # its network ready as soon as the kubelet registers.
  render_to cni.conflist "$CLUSTER_DIR/cni/net.d/10-appstack.conflist"
  proc_start containerd containerd --config "$CONF_DIR/containerd.toml" --log-level warn
}

wait_containerd() {
  wait_ready containerd 60 ctr --address "$CONTAINERD_SOCK" version
}

start_kube_proxy() {
  # shellcheck disable=SC2034 # used by the template
  local NODE_IP=$1
  render_to kube-proxy.yaml "$CONF_DIR/kube-proxy.yaml"
  proc_start kube-proxy "$K8S_BIN/kube-proxy" --config "$CONF_DIR/kube-proxy.yaml" --v=1
  # /healthz also wants the Node object; /livez says the rules are synced.
  wait_ready kube-proxy 60 curl -fsS http://127.0.0.1:10256/livez
}

# kube-router enforces NetworkPolicy with iptables and ipsets on this node,
# beside our bridge CNI and kube-proxy; it routes and proxies nothing.
start_network_policy() {
  proc_start kube-router "$KUBE_ROUTER_BIN/kube-router" \
    --kubeconfig="$KUBECONFIG_DIR/kube-router.kubeconfig" --hostname-override="$NODE_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --health-port="$NETPOL_HEALTH_PORT" --metrics-port=0 --v=1
  wait_ready kube-router 60 curl -fsS "http://127.0.0.1:$NETPOL_HEALTH_PORT/healthz"
}

start_kubelet() {
  local ip=$1
  mkdir -p "$CLUSTER_DIR/kubelet"
  KUBELET_STARTED=$(date +%s)
  render_to kubelet.yaml "$CONF_DIR/kubelet.yaml"
  proc_start kubelet "$K8S_BIN/kubelet" --config "$CONF_DIR/kubelet.yaml" \
    --kubeconfig "$KUBECONFIG_DIR/kubelet.kubeconfig" \
    --root-dir "$CLUSTER_DIR/kubelet" --cert-dir "$CLUSTER_DIR/kubelet/pki" \
    --hostname-override "$NODE_NAME" --node-ip "$ip" --v=1
  wait_ready kubelet 60 curl -fsS http://127.0.0.1:10248/healthz
}

node_ready() {
  [[ $(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# node_ready_since EPOCH: Ready, as reported by a kubelet heartbeat after EPOCH
# (the Node object of an earlier run still says Ready until it times out).
node_ready_since() {
  local out status beat
  out=$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}' 2>/dev/null) || return 1
  read -r status beat <<<"$out"
  [[ $status == True ]] && (($(date -d "$beat" +%s) >= $1))
}

wait_node_ready() {
  wait_ready kubelet 90 node_ready_since "$KUBELET_STARTED"
}
