# shellcheck shell=bash
# Cluster add-ons: the base objects (e2e/cluster/addons.yaml), CoreDNS,
# metrics-server and the PVC provisioner as host processes, and the images the
# cluster itself needs. Sourced by cluster.sh.

# The images the demo's story needs (the sandbox, the test pods' tools, the
# default-major stores and their exporters), and the older store majors and Valkey, which only the
# suite runs.
# shellcheck disable=SC2034 # read by cluster.sh
DEMO_IMAGES=(pause tools redis8 postgres17 postgres-exporter redis-exporter)
# shellcheck disable=SC2034 # read by cluster.sh
MORE_IMAGES=(redis postgres valkey8)

# import_images NAME...: waits for the background build `up` started, then builds
# (what is not cached yet) and imports.
IMAGES_PID=""
import_images() {
  if [[ -n $IMAGES_PID ]]; then
    wait "$IMAGES_PID" || warn "the background image build failed (see $LOG_DIR/images-build.log); building again"
    IMAGES_PID=""
  fi
  CONTAINERD_ADDRESS=$CONTAINERD_SOCK "$REPO_ROOT/e2e/images/build.sh" "$@"
}

apply_addons() {
  local ip=$1
  # Used by the template.
  # shellcheck disable=SC2034
  local NODE_IP=$ip CA_BUNDLE_B64
  # shellcheck disable=SC2034
  CA_BUNDLE_B64=$(base64 -w0 <"$PKI/ca.crt")
  render addons.yaml >"$CONF_DIR/addons.yaml"
  # The default ServiceAccount and RBAC bootstrap can lag the API server's
  # readiness by a moment on a fresh etcd: retry briefly.
  local _
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if kc apply --server-side --force-conflicts --field-manager appstack-cluster \
      -f "$CONF_DIR/addons.yaml" >"$LOG_DIR/addons-apply.log" 2>&1; then
      return 0
    fi
    sleep 1
  done
  cat "$LOG_DIR/addons-apply.log" >&2
  return 1
}

start_coredns() {
  local ip=$1
  # shellcheck disable=SC2034 # used by the template
  local NODE_IP=$ip
  render_to Corefile "$CONF_DIR/Corefile"
  proc_start coredns "$COREDNS_BIN/coredns" -conf "$CONF_DIR/Corefile"
  wait_ready coredns 60 curl -fsS "http://127.0.0.1:$DNS_READY_PORT/ready"
}

start_metrics_server() {
  local ip=$1 kcfg=$KUBECONFIG_DIR/metrics-server.kubeconfig
  proc_start metrics-server "$METRICS_SERVER_BIN/metrics-server" \
    --kubeconfig "$kcfg" --authentication-kubeconfig "$kcfg" --authorization-kubeconfig "$kcfg" \
    --bind-address "$ip" --secure-port "$METRICS_PORT" \
    --tls-cert-file "$PKI/metrics-server-serving.crt" --tls-private-key-file "$PKI/metrics-server-serving.key" \
    --kubelet-preferred-address-types InternalIP --kubelet-use-node-status-port \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --metric-resolution 15s --v=1
  wait_ready metrics-server 90 apiservice_available
}

apiservice_available() {
  [[ $(kc get apiservice v1beta1.metrics.k8s.io \
    -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null) == True ]]
}

start_local_path_provisioner() {
  render_to local-path-config.json "$CONF_DIR/local-path-config.json"
  render_to local-path-helper-pod.yaml "$CONF_DIR/local-path-helper-pod.yaml"
  mkdir -p "$CLUSTER_DIR/volumes"
  proc_start local-path-provisioner "$LOCAL_PATH_BIN/local-path-provisioner" start \
    --kubeconfig "$KUBECONFIG_DIR/local-path-provisioner.kubeconfig" \
    --config "$CONF_DIR/local-path-config.json" \
    --helper-pod-file "$CONF_DIR/local-path-helper-pod.yaml" \
    --provisioner-name rancher.io/local-path --namespace local-path-storage \
    --configmap-name local-path-config --service-account-name local-path-provisioner \
    --helper-image "$TOOLS_IMAGE"
  sleep 1
  require_alive local-path-provisioner
}

# S3 for backups: versitygw's posix backend over $CLUSTER_DIR/s3 (metadata in
# a sidecar directory, so the filesystem needs no xattrs). The root
# credentials are made once and kept in $S3_CREDENTIALS (mode 600): tests read
# them from there into the Secrets they give AppStack.
S3_CREDENTIALS=$CLUSTER_DIR/s3/credentials
start_s3() {
  local ip=$1
  mkdir -p "$CLUSTER_DIR/s3/data" "$CLUSTER_DIR/s3/meta"
  if [[ ! -s $S3_CREDENTIALS ]]; then
    (umask 077 && printf 'AWS_ACCESS_KEY_ID=appstack\nAWS_SECRET_ACCESS_KEY=%s\n' \
      "$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')" >"$S3_CREDENTIALS")
  fi
  local key secret
  key=$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' "$S3_CREDENTIALS")
  secret=$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' "$S3_CREDENTIALS")
  # The keys go by environment, not the command line (ps shows that).
  ROOT_ACCESS_KEY=$key ROOT_SECRET_KEY=$secret proc_start s3 "$VERSITYGW_BIN/versitygw" \
    --port "$ip:$S3_PORT" --health /healthz --quiet \
    posix --sidecar "$CLUSTER_DIR/s3/meta" "$CLUSTER_DIR/s3/data"
  wait_ready s3 60 curl -fsS "http://$ip:$S3_PORT/healthz"
}
