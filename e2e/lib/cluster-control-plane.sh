# shellcheck shell=bash
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler as host
# processes. Sourced by cluster.sh; K8S_BIN and ETCD_BIN come from tools.sh.

start_etcd() {
  mkdir -p "$CLUSTER_DIR/etcd"
  chmod 700 "$CLUSTER_DIR/etcd"
  # Loopback only and plain HTTP, as upstream's local-up-cluster.sh does: only
  # the API server on this host talks to it.
  proc_start etcd "$ETCD_BIN/etcd" --name appstack --data-dir "$CLUSTER_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster appstack=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --quota-backend-bytes 4294967296 --log-level warn
  wait_ready etcd 60 curl -fsS http://127.0.0.1:2381/health
}

start_apiserver() {
  local ip=$1
  proc_start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --advertise-address "$ip" --bind-address 0.0.0.0 --secure-port "$API_PORT" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction,PodSecurity \
    --allow-privileged=false \
    --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" \
    --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --profiling=false --v=1
}

wait_apiserver() {
  wait_ready kube-apiserver 120 kc get --raw /readyz
}

start_controller_manager() {
  local kcfg=$KUBECONFIG_DIR/kube-controller-manager.kubeconfig
  proc_start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$kcfg" --authentication-kubeconfig "$kcfg" --authorization-kubeconfig "$kcfg" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --allocate-node-cidrs=true --cluster-cidr "$POD_CIDR" --node-cidr-mask-size 24 \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --profiling=false --v=1
}

start_scheduler() {
  local kcfg=$KUBECONFIG_DIR/kube-scheduler.kubeconfig
  proc_start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$kcfg" --authentication-kubeconfig "$kcfg" --authorization-kubeconfig "$kcfg" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1
}

start_controllers() {
  start_controller_manager
  start_scheduler
  wait_ready kube-controller-manager 60 curl -fsSk https://127.0.0.1:10257/healthz
  wait_ready kube-scheduler 60 curl -fsSk https://127.0.0.1:10259/healthz
}
