# shellcheck shell=bash
# `cluster.sh status`: proves the cluster does what the tests need, with real
# pods in a throwaway namespace (removed afterwards): the node is Ready; a pod
# runs; a Service resolves by DNS from another pod and answers; data written to
# a PVC survives deleting the pod; `kubectl top pod` shows CPU; S3 stores and
# returns an object, and pods reach it. Prints which check failed. Uses $KUBECTL (set by cluster.sh for the chosen cluster).

STATUS_NS=""
STATUS_FAILED=0

_k() { "${KUBECTL[@]}" "$@"; }

_check() { # name command...: runs one check, prints ok/FAILED and its time
  local name=$1 t0=$SECONDS out
  shift
  if out=$("$@" 2>&1); then
    printf '  ok      %-44s (%ss)\n' "$name" $((SECONDS - t0))
  else
    printf '  FAILED  %-44s (%ss)\n' "$name" $((SECONDS - t0))
    [[ -n $out ]] && printf '%s\n' "$out" | tail -n 30 | sed 's/^/          /'
    STATUS_FAILED=1
    return 1
  fi
}

_status_cleanup() {
  if [[ -n $STATUS_NS ]]; then _k delete namespace "$STATUS_NS" --wait=false >/dev/null 2>&1 || true; fi
}

# Every probe pod passes the "restricted" Pod Security level (the namespace
# enforces it), runs as uid/gid 999 like the operator's stores, and uses only
# the locally built tools image.
_probe_pod() { # name command [claim]
  local name=$1 cmd=$2 claim=${3:-} vols="" mounts=""
  if [[ -n $claim ]]; then
    vols="  volumes: [{name: data, persistentVolumeClaim: {claimName: $claim}}]"
    mounts="      volumeMounts: [{name: data, mountPath: /data}]"
  fi
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $name
  namespace: $STATUS_NS
  labels: {app: $name}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsNonRoot: true
    runAsUser: 999
    runAsGroup: 999
    fsGroup: 999
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: main
      image: $STATUS_IMAGE
      imagePullPolicy: IfNotPresent
      command: [sh, -c, '$cmd']
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
$mounts
$vols
EOF
}

_node_ready() {
  local ready
  ready=$(_k get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
  grep -q '=True$' <<<"$ready" || {
    echo "no Ready node:"
    echo "$ready"
    return 1
  }
}

_pod_phase() { _k -n "$STATUS_NS" get pod "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }

# _wait_phase POD PHASE SECONDS: waits for the phase; on failure shows why.
_wait_phase() {
  local pod=$1 want=$2 deadline=$((SECONDS + $3)) phase
  while :; do
    phase=$(_pod_phase "$pod")
    [[ $phase == "$want" ]] && return 0
    if [[ $phase == Failed || $phase == Succeeded ]] || ((SECONDS >= deadline)); then
      echo "pod $pod is '${phase:-missing}', expected $want"
      _k -n "$STATUS_NS" describe pod "$pod" 2>&1 | sed -n '/^Events:/,$p' | tail -n 8
      _k -n "$STATUS_NS" logs "$pod" 2>&1 | tail -n 5
      return 1
    fi
    sleep 1
  done
}

_pod_runs() {
  _wait_phase web Running 90
}

_endpoint_ready() {
  _k -n "$STATUS_NS" get endpointslices -l kubernetes.io/service-name=web \
    -o jsonpath='{range .items[*].endpoints[*]}{.conditions.ready}{"\n"}{end}' 2>/dev/null | grep -qx true
}

# What each layer between a client and the web pod says, so a failure names
# the layer: the pod's conditions, its EndpointSlice, and on our own cluster
# kube-proxy's rules for the ClusterIP and its last sync.
_service_diagnosis() {
  local ip now last
  echo "web pod conditions: $(_k -n "$STATUS_NS" get pod web -o jsonpath='{range .status.conditions[*]}{.type}={.status} {end}' 2>&1)"
  echo "EndpointSlice of Service web: $(_k -n "$STATUS_NS" get endpointslices -l kubernetes.io/service-name=web \
    -o jsonpath='{range .items[*].endpoints[*]}{.addresses[0]} ready={.conditions.ready} {end}' 2>&1)"
  [[ $CLUSTER == local ]] || return 0
  ip=$(_k -n "$STATUS_NS" get service web -o jsonpath='{.spec.clusterIP}' 2>/dev/null)
  echo "kube-proxy rules for $ip:"
  { iptables-save -t nat; iptables-save -t filter; } 2>&1 | grep -F -- "$ip" | head -n 6 | sed 's/^/  /'
  now=$(date +%s)
  last=$(curl -fsS http://127.0.0.1:10249/metrics 2>/dev/null |
    awk '/^kubeproxy_sync_proxy_rules_last_timestamp_seconds\{ip_family="IPv4"\}/ {printf "%d", $2}')
  echo "kube-proxy last synced its rules $((now - ${last:-0}))s ago; its log ends:"
  tail -n 5 "$LOG_DIR/kube-proxy.log" 2>&1 | sed 's/^/  /'
}

# The local cluster's S3: a signed PUT, GET and DELETE from the host (as a
# backup would), then its health endpoint from a pod, through the Service.
_s3_works() {
  local ip key secret url got
  ip=$(cat "$PID_DIR/node-ip" 2>/dev/null || node_ip)
  key=$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' "$CLUSTER_DIR/s3/credentials")
  secret=$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' "$CLUSTER_DIR/s3/credentials")
  url=http://$ip:$S3_PORT/status-$STATUS_TOKEN
  local s3=(curl -fsS --aws-sigv4 aws:amz:us-east-1:s3 --user "$key:$secret"
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD')
  "${s3[@]}" -X PUT "$url" >/dev/null || return 1
  "${s3[@]}" -X PUT --data-binary "probe-$STATUS_TOKEN" "$url/probe" >/dev/null || return 1
  got=$("${s3[@]}" "$url/probe") || return 1
  "${s3[@]}" -X DELETE "$url/probe" >/dev/null || return 1
  "${s3[@]}" -X DELETE "$url" >/dev/null || return 1
  [[ $got == "probe-$STATUS_TOKEN" ]] || { echo "GET returned ${got:0:80}"; return 1; }
  _probe_pod s3-client "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 2 wget -qO- http://s3.kube-system.svc:$S3_PORT/healthz && exit 0; sleep 1; done; exit 1" |
    _k apply -f - >/dev/null || return 1
  _wait_phase s3-client Succeeded 60 || { echo "a pod could not reach s3.kube-system.svc:$S3_PORT"; return 1; }
}

_dns_and_service() {
  # The client starts only once the EndpointSlice lists the web pod as ready;
  # kube-proxy programs it a moment later (a ClusterIP without rules refuses
  # connections), so the client retries for up to 20 s.
  local deadline=$((SECONDS + 60)) fqdn=web.$STATUS_NS.svc.$CLUSTER_DOMAIN out
  until _endpoint_ready; do
    if ((SECONDS >= deadline)); then
      echo "Service web has no ready endpoint after 60s (the pod's readiness, or kube-controller-manager's EndpointSlice controller)"
      _service_diagnosis
      return 1
    fi
    sleep 0.5
  done
  # timeout(1), not wget -T: Debian's static busybox wget crashes with -T.
  _probe_pod client "nslookup $fqdn && for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do timeout 2 wget -qO- http://$fqdn/ && exit 0; sleep 1; done; exit 1" |
    _k apply -f - >/dev/null || return 1
  if ! _wait_phase client Succeeded 90; then
    _service_diagnosis
    return 1
  fi
  out=$(_k -n "$STATUS_NS" logs client)
  grep -q "status-probe-$STATUS_TOKEN" <<<"$out" || {
    echo "the Service answered, but not with the expected page:"
    echo "$out"
    return 1
  }
}

_pvc_survives() {
  _wait_phase writer Succeeded 90 || return 1
  _k -n "$STATUS_NS" delete pod writer --wait=true --timeout=60s >/dev/null || return 1
  _probe_pod reader 'cat /data/pgdata/probe' data | _k apply -f - >/dev/null || return 1
  _wait_phase reader Succeeded 60 || return 1
  local got
  got=$(_k -n "$STATUS_NS" logs reader)
  [[ $got == "$STATUS_TOKEN" ]] || {
    echo "read '$got' back from the PVC after deleting the writer pod, expected '$STATUS_TOKEN'"
    return 1
  }
}

_top_shows_cpu() {
  local deadline=$((SECONDS + 120)) out=""
  while ((SECONDS < deadline)); do
    # NAME CPU(cores) MEMORY(bytes): the CPU column holds e.g. 0m or 3m.
    if out=$(_k -n "$STATUS_NS" top pod web --no-headers 2>&1) && [[ $(awk '{print $2}' <<<"$out") =~ ^[0-9]+m$ ]]; then
      return 0
    fi
    sleep 3
  done
  echo "kubectl top pod web: ${out:-no output}"
  return 1
}

cluster_status() {
  local t0=$SECONDS
  STATUS_TOKEN=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
  STATUS_NS=appstack-status-$STATUS_TOKEN
  # Another cluster (kind) has no local images but pulls: busybox has the same applets.
  STATUS_IMAGE=${APPSTACK_STATUS_IMAGE:-$TOOLS_IMAGE}
  [[ $CLUSTER == current && -z ${APPSTACK_STATUS_IMAGE:-} ]] && STATUS_IMAGE=busybox:1.36
  trap '_status_cleanup; on_exit' EXIT
  printf 'cluster status (%s)\n' "$(_k config current-context 2>/dev/null || echo '?')"

  _check "API server answers" _k get --raw /readyz || return 1
  _check "node Ready" _node_ready || return 1

  _k create namespace "$STATUS_NS" >/dev/null
  _k label namespace "$STATUS_NS" pod-security.kubernetes.io/enforce=restricted >/dev/null
  # The namespace's default ServiceAccount comes from a controller, a moment later.
  wait_until 30 "the default ServiceAccount" _k -n "$STATUS_NS" get serviceaccount default || true
  {
    _probe_pod web "mkdir -p /tmp/www && echo status-probe-$STATUS_TOKEN >/tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"
    echo ---
    cat <<EOF
apiVersion: v1
kind: Service
metadata: {name: web, namespace: $STATUS_NS}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: $STATUS_NS}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
EOF
    # A subdirectory, the way PGDATA lives inside the PostgreSQL volume.
    _probe_pod writer "mkdir -p /data/pgdata && echo $STATUS_TOKEN >/data/pgdata/probe && sync" data
  } | _k apply -f - >/dev/null

  _check "a pod runs on the node" _pod_runs || true
  _check "Service resolves by DNS and answers" _dns_and_service || true
  _check "PVC data survives deleting the pod" _pvc_survives || true
  if [[ $CLUSTER == current ]] || proc_alive metrics-server; then
    _check "kubectl top pod shows CPU" _top_shows_cpu || true
  else
    printf '  skipped %-44s (metrics-server not started: up --demo)\n' "kubectl top pod shows CPU"
  fi
  if [[ $CLUSTER != current ]]; then
    if proc_alive s3; then
      _check "S3 stores an object; pods reach it" _s3_works || true
    else
      printf '  skipped %-44s (S3 not started: up --demo)\n' "S3 stores an object; pods reach it"
    fi
  fi

  if ((STATUS_FAILED)); then
    printf 'status: FAILED (%ss). Logs: e2e/cluster.sh logs [component]\n' $((SECONDS - t0))
    return 1
  fi
  printf 'status: ok (%ss)\n' $((SECONDS - t0))
}
