#!/usr/bin/env bash
# pass/fail only print and count, so `cond && pass || fail` is safe here.
# shellcheck disable=SC2015
# Tests the chart: helm lint (also --strict), renders for the supported value
# sets with checks on what they contain (least-privilege RBAC spelled out,
# restricted pod security, optional objects only when asked), schema rejections,
# and, when a cluster is reachable, a server-side dry run of every render plus
# the operator's real RBAC checked with SubjectAccessReviews.
# Usage: charts/test.sh [--cluster]   (--cluster: fail instead of skipping when
#                                       no cluster answers)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_cluster=0
[[ "${1:-}" == --cluster ]] && require_cluster=1
find_helm
# The cluster checks talk to the local cluster (kubectl and KUBECONFIG from
# e2e/cluster.sh env) unless CLUSTER=current asks for the current kube context.
if [[ ${CLUSTER:-local} != current ]]; then
  eval "$("$REPO_ROOT/e2e/cluster.sh" env)"
fi

t0=$SECONDS
work=$(mktemp -d)
failures=0
fail() { echo "  FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "  ok: $*"; }

# render <out> [helm args...]: helm template of the chart as release appstack-operator.
render() {
  local out=$1; shift
  "$HELM" template appstack-operator "$CHART" --namespace appstack-system --kube-version "$KUBE_VERSION" "$@" > "$out"
}
# doc <file> <kind> [name]: the rendered documents of that kind (and name).
doc() {
  awk -v kind="$2" -v name="${3:-}" '
    function flush() { if (k == kind && (name == "" || n == name)) printf "%s", buf; buf = ""; k = ""; n = "" }
    /^---/ { flush(); inmeta = 0; next }
    { buf = buf $0 "\n" }
    /^kind: / { k = $2 }
    /^metadata:/ { inmeta = 1; next }
    /^[^ #]/ { inmeta = 0 }
    inmeta && /^  name: / && n == "" { n = $2 }
    END { flush() }' "$1"
}
count() { doc "$@" | grep -c '^kind: ' || true; }
# rules <file> <kind> <name>: the rules blocks of those (Cluster)Roles.
rules() {
  doc "$1" "$2" "$3" | awk '/^---/ { r = 0 } /^rules:/ { r = 1; next } r && /^[^ ]/ { r = 0 } r { print }'
}

# Exactly the kinds and verbs of the shared interfaces, nothing else.
expected_rules=$(cat <<'EOF'
  - apiGroups: ["appstack.dev"]
    resources: ["appstacks"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["appstack.dev"]
    resources: ["appstacks/status"]
    verbs: ["patch"]
  - apiGroups: ["appstack.dev"]
    resources: ["appstacks/finalizers"]
    verbs: ["update"]
  - apiGroups: ["apps"]
    resources: ["deployments", "statefulsets"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: [""]
    resources: ["services", "secrets", "configmaps"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "watch"]
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["patch", "delete"]
  - apiGroups: [""]
    resources: ["pods/log"]
    verbs: ["get"]
  - apiGroups: ["batch"]
    resources: ["jobs"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: [""]
    resources: ["persistentvolumeclaims"]
    verbs: ["get", "create"]
  - apiGroups: ["batch"]
    resources: ["cronjobs"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["autoscaling"]
    resources: ["horizontalpodautoscalers"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["policy"]
    resources: ["poddisruptionbudgets"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["networking.k8s.io"]
    resources: ["networkpolicies"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["networking.k8s.io"]
    resources: ["ingresses"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["gateway.networking.k8s.io"]
    resources: ["httproutes"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
EOF
)

echo "== helm lint"
for strict in "" --strict; do
  for set in "" "watchNamespaces={team-a,team-b}" "metrics.serviceMonitor.enabled=true"; do
    if out=$("$HELM" lint $strict --kube-version "$KUBE_VERSION" "$CHART" ${set:+--set "$set"} 2>&1); then
      pass "helm lint ${strict:-} ${set:-(defaults)}"
    else
      fail "helm lint ${strict:-} ${set:-(defaults)}"; echo "$out" | tail -n 15 >&2
    fi
  done
done

echo "== render: defaults"
def="$work/defaults.yaml"
render "$def" --include-crds
[[ $(count "$def" ClusterRole appstack-operator) == 1 ]] && pass "ClusterRole for all namespaces" || fail "no ClusterRole appstack-operator"
[[ $(count "$def" ClusterRoleBinding appstack-operator) == 1 ]] && pass "ClusterRoleBinding" || fail "no ClusterRoleBinding"
got=$(rules "$def" ClusterRole appstack-operator)
[[ "$got" == "$expected_rules" ]] && pass "ClusterRole rules are exactly the interface's" \
  || { fail "ClusterRole rules differ from the interface"; diff <(echo "$expected_rules") <(echo "$got") >&2 || true; }
lease_rules=$(rules "$def" Role appstack-operator-leader-election)
grep -q 'resourceNames: \["appstack-operator"\]' <<<"$lease_rules" && grep -q 'verbs: \["get", "update"\]' <<<"$lease_rules" \
  && grep -q 'verbs: \["create"\]' <<<"$lease_rules" && [[ $(grep -c apiGroups <<<"$lease_rules") == 2 ]] \
  && pass "leader-election Role: get/update on its own Lease, create" || fail "leader-election Role rules: $lease_rules"
[[ $(count "$def" Role) == 1 ]] && pass "no namespaced Role besides leader election" || fail "unexpected Roles"
[[ $(count "$def" ServiceMonitor) == 0 ]] && pass "no ServiceMonitor by default" || fail "ServiceMonitor rendered by default"
[[ $(count "$def" PodMonitor) == 0 && $(count "$def" PrometheusRule) == 0 && $(count "$def" ConfigMap) == 0 ]] \
  && pass "no PodMonitor, PrometheusRule or dashboard by default" || fail "store monitoring rendered by default"
! grep -q APPSTACK_METRICS_SCRAPERS "$def" && pass "scrapers left to the operator's default" || fail "APPSTACK_METRICS_SCRAPERS set by default"
[[ $(count "$def" PodDisruptionBudget) == 1 ]] && pass "PodDisruptionBudget with 2 replicas" || fail "no PodDisruptionBudget"
[[ $(count "$def" Service appstack-operator-metrics) == 1 ]] && pass "metrics Service" || fail "no metrics Service"
dep=$(doc "$def" Deployment appstack-operator)
for want in "replicas: 2" "runAsNonRoot: true" "readOnlyRootFilesystem: true" "allowPrivilegeEscalation: false" \
  "- ALL" "type: RuntimeDefault" "path: /healthz" "path: /readyz" "containerPort: 8080" "name: http" \
  "fieldPath: metadata.name" "fieldPath: metadata.namespace" 'image: "ghcr.io/appstack-dev/appstack-operator:0.1.0"' \
  "name: APPSTACK_LEADER_ELECTION" "serviceAccountName: appstack-operator"; do
  grep -qF -- "$want" <<<"$dep" || fail "Deployment lacks '$want'"
done
grep -q APPSTACK_NAMESPACES <<<"$dep" && fail "APPSTACK_NAMESPACES set without watchNamespaces" || pass "Deployment: restricted security, probes, downward API, image"
np=$(doc "$def" NetworkPolicy appstack-operator)
for want in "- Ingress" "port: http" 'kubernetes.io/metadata.name: "monitoring"' "app.kubernetes.io/instance: appstack-operator"; do
  grep -qF -- "$want" <<<"$np" || fail "operator NetworkPolicy lacks '$want'"
done
grep -q Egress <<<"$np" && fail "operator NetworkPolicy restricts egress (API server, DNS, probe)" \
  || pass "NetworkPolicy: the operator's port only from namespace monitoring, egress open"
if [[ -s "$CHART/crds/appstack.dev_appstacks.yaml" ]]; then
  [[ $(count "$def" CustomResourceDefinition) == 1 ]] && pass "CRD from crds/" || fail "CRD missing from --include-crds"
else
  fail "charts/appstack-operator/crds/appstack.dev_appstacks.yaml is missing; run charts/sync-crd.sh"
fi

echo "== render: watchNamespaces={team-a,team-b}"
ns="$work/namespaced.yaml"
render "$ns" --set "watchNamespaces={team-a,team-b}"
[[ $(count "$ns" ClusterRoleBinding) == 0 ]] && [[ $(count "$ns" ClusterRole appstack-operator) == 0 ]] \
  && pass "no cluster-wide access" || fail "ClusterRole/Binding rendered though namespaces are set"
for n in team-a team-b; do
  [[ $(doc "$ns" Role appstack-operator | grep -c "^  namespace: $n$") == 1 ]] \
    && [[ $(doc "$ns" RoleBinding appstack-operator | grep -c "^  namespace: $n$") == 1 ]] \
    && pass "Role + RoleBinding in $n" || fail "no Role + RoleBinding in $n"
done
[[ "$(rules "$ns" Role appstack-operator)" == "$(printf '%s\n%s' "$expected_rules" "$expected_rules")" ]] \
  && pass "namespaced Roles' rules are exactly the interface's" || fail "namespaced Role rules differ"
if { doc "$def" ClusterRole; doc "$def" Role; doc "$ns" Role; } | grep -q '\*'; then
  fail "a wildcard in a (Cluster)Role"
else pass "no wildcard in any (Cluster)Role"; fi
grep -q 'value: "team-a,team-b"' <<<"$(doc "$ns" Deployment)" && pass "APPSTACK_NAMESPACES=team-a,team-b" || fail "APPSTACK_NAMESPACES not passed"

echo "== render: networkPolicy values"
npv="$work/netpol.yaml"
render "$npv" --set networkPolicy.enabled=false
[[ $(count "$npv" NetworkPolicy) == 0 ]] && pass "no NetworkPolicy when disabled" || fail "NetworkPolicy rendered though disabled"
render "$npv" --set-json 'networkPolicy.metricsNamespaces=[]'
doc "$npv" NetworkPolicy appstack-operator | grep -q '^  ingress: \[\]$' \
  && pass "no namespace named: ingress [] (only the node)" || fail "no namespace named, yet ingress is not []"
render "$npv" --set-json 'networkPolicy.metricsNamespaces=["monitoring","ops"]' \
  --set-json 'networkPolicy.metricsFrom=[{"ipBlock":{"cidr":"10.0.0.0/8"}}]'
got=$(doc "$npv" NetworkPolicy appstack-operator)
grep -qF 'kubernetes.io/metadata.name: "ops"' <<<"$got" && grep -qF 'cidr: 10.0.0.0/8' <<<"$got" \
  && pass "metricsNamespaces and metricsFrom both admitted" || fail "metricsNamespaces/metricsFrom not rendered: $got"

echo "== render: metrics.serviceMonitor.enabled=true"
sm="$work/servicemonitor.yaml"
render "$sm" --set metrics.serviceMonitor.enabled=true
[[ $(count "$sm" ServiceMonitor appstack-operator) == 1 ]] && pass "ServiceMonitor rendered" || fail "no ServiceMonitor"

echo "== render: the stores' monitoring"
mon="$work/store-monitoring.yaml"
render "$mon" --set metrics.podMonitor.enabled=true --set metrics.prometheusRule.enabled=true \
  --set metrics.dashboard.enabled=true --set-json 'metrics.scrapeFrom=[{"namespaceSelector":{"matchLabels":{"team":"observability"}}}]'
[[ $(count "$mon" PodMonitor appstack-operator-stores) == 1 ]] && doc "$mon" PodMonitor | grep 'port: metrics' >/dev/null \
  && pass "PodMonitor of the exporters' port" || fail "no PodMonitor of port metrics"
[[ $(count "$mon" PrometheusRule appstack-operator-stores) == 1 ]] && pass "PrometheusRule rendered" || fail "no PrometheusRule"
doc "$mon" ConfigMap appstack-operator-dashboard | grep 'grafana_dashboard: "1"' >/dev/null \
  && pass "dashboard ConfigMap with the sidecar's label" || fail "no dashboard ConfigMap"
grep -qF '{\"namespaceSelector\":{\"matchLabels\":{\"team\":\"observability\"}}}' "$mon" \
  && pass "scrapeFrom passed as APPSTACK_METRICS_SCRAPERS" || fail "scrapeFrom not passed to the operator"

echo "== render: local cluster values, one replica"
loc="$work/local.yaml"
render "$loc" -f "$CHARTS_DIR/values-local-cluster.yaml" --set replicaCount=1
grep -qF 'image: "appstack.local/appstack-operator:dev"' "$loc" && grep -q 'imagePullPolicy: Never' "$loc" \
  && pass "local image, pullPolicy Never" || fail "local values not applied"
[[ $(count "$loc" PodDisruptionBudget) == 0 ]] && pass "no PDB with one replica" || fail "PDB with one replica"

echo "== refused values"
refuse() { # <what> <helm args...>: the render must fail
  local what=$1; shift
  if "$HELM" template x "$CHART" --kube-version "$KUBE_VERSION" "$@" >/dev/null 2>"$work/err"; then fail "accepted $what"
  else pass "refused $what: $(grep -m1 -E 'execution error|^- at ' "$work/err" | sed -E 's/^Error: execution error at \([^)]*\): //' | head -c 110)"; fi
}
refuse "2 replicas without leader election" --set leaderElection.enabled=false
refuse "logFormat=xml" --set logFormat=xml
refuse "an unknown key" --set replicas=3
refuse "an invalid namespace name" --set "watchNamespaces={Team_A}"
refuse "an invalid metrics namespace" --set "networkPolicy.metricsNamespaces={Team_A}"
refuse "a ServiceMonitor without the metrics Service" --set metrics.serviceMonitor.enabled=true --set metrics.service.enabled=false

# ---- cluster checks -------------------------------------------------------
if ! kubectl get --raw /readyz >/dev/null 2>&1; then
  if ((require_cluster)); then
    fail "no cluster reachable (eval \"\$(e2e/cluster.sh env)\" first)"
  else
    echo "== SKIP cluster checks: no cluster reachable (eval \"\$(e2e/cluster.sh env)\"; run with --cluster to require them)"
  fi
else
  echo "== server-side dry run and RBAC on $(kubectl config current-context 2>/dev/null || echo cluster)"
  # Fresh namespaces per run: a previous run's may still be terminating.
  tns=appstack-chart-test-$$
  made=()
  cleanup() {
    kubectl delete clusterrole,clusterrolebinding -l app.kubernetes.io/instance=chart-rbac-test --ignore-not-found >/dev/null 2>&1 || true
    ((${#made[@]})) && kubectl delete namespace "${made[@]}" --wait=false --ignore-not-found >/dev/null 2>&1 || true
  }
  trap 'cleanup; rm -rf "$work"' EXIT
  for n in "$tns" "$tns-a" "$tns-b"; do
    kubectl get namespace "$n" >/dev/null 2>&1 || { kubectl create namespace "$n" >/dev/null; made+=("$n"); }
    # Like deploy/operator.yaml's namespace: the API server then warns about
    # any pod template that would break the "restricted" standard.
    kubectl label --overwrite namespace "$n" pod-security.kubernetes.io/enforce=restricted \
      pod-security.kubernetes.io/warn=restricted >/dev/null
  done
  # Cluster-scoped objects (CRD, ClusterRole and binding) share their names
  # with an installed release of the chart; a dry run persists nothing, so it
  # may take their fields over (--force-conflicts) instead of failing on them.
  dry() { # <what> <helm args...>: server-side dry run of that render
    local what=$1; shift
    if "$HELM" template appstack-operator "$CHART" --namespace "$tns" --kube-version "$KUBE_VERSION" "$@" \
      | kubectl apply --server-side --force-conflicts --dry-run=server --field-manager=chart-test -f - >"$work/dry" 2>&1; then
      if grep -qi 'violate PodSecurity' "$work/dry"; then
        fail "dry run: $what: $(grep -i 'violate PodSecurity' "$work/dry" | head -n 3)"
      else
        pass "dry run: $what ($(grep -c 'serverside-applied' "$work/dry") objects, restricted Pod Security)"
      fi
    else
      fail "dry run: $what"; grep -v 'serverside-applied' "$work/dry" | head -n 15 >&2
    fi
  }
  dry "defaults incl. CRD" --include-crds
  dry "watchNamespaces" --set "watchNamespaces={$tns-a,$tns-b}"
  dry "local cluster values" -f "$CHARTS_DIR/values-local-cluster.yaml"
  if kubectl get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then
    dry "serviceMonitor" --set metrics.serviceMonitor.enabled=true
  else
    echo "  skip: ServiceMonitor dry run (no monitoring.coreos.com CRD in this cluster)"
  fi

  # The commented examples must be valid AppStacks under this tree's CRD:
  # apply it (Helm would install it too and never removes it), then dry-run them.
  crd="$CHART/crds/appstack.dev_appstacks.yaml"
  if [[ -s "$crd" ]]; then
    kubectl apply --server-side --force-conflicts -f "$crd" >/dev/null
    for _ in $(seq 30); do
      [[ $(kubectl get crd appstacks.appstack.dev \
        -o jsonpath='{.status.conditions[?(@.type=="Established")].status}') == True ]] && break
      sleep 1
    done
    for ex in "$REPO_ROOT"/deploy/examples/*.yaml; do
      if kubectl apply --dry-run=server --validate=strict -n "$tns" -f "$ex" >"$work/dry" 2>&1; then
        pass "example ${ex#"$REPO_ROOT"/} is a valid AppStack"
      else
        fail "example ${ex#"$REPO_ROOT"/}: $(head -c 300 "$work/dry")"
      fi
    done
  fi

  # The RBAC objects for real (a separate release name, so nothing collides
  # with an installed operator), then ask the API server what the operator's
  # ServiceAccount may and may not do.
  rbac_apply() {
    "$HELM" template chart-rbac-test "$CHART" --namespace "$tns" --kube-version "$KUBE_VERSION" "$@" \
      --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml \
      --show-only templates/leader-election-rbac.yaml | kubectl apply --server-side --field-manager=chart-test -f - >/dev/null
  }
  sa="system:serviceaccount:$tns:chart-rbac-test-appstack-operator"
  # can <yes|no> <verb> <resource[.group][/subresource]> <namespace|""> [name]:
  # a SubjectAccessReview as the operator's ServiceAccount. Asked directly
  # (not `kubectl auth can-i`) so that it needs no discovery of the AppStack CRD.
  can() {
    local want=$1 verb=$2 res=$3 ns=$4 name=${5:-} sub="" group=""
    [[ $res == */* ]] && { sub=${res#*/}; res=${res%%/*}; }
    [[ $res == *.* ]] && { group=${res#*.}; res=${res%%.*}; }
    local got
    got=$(kubectl create -o jsonpath='{.status.allowed}' -f - <<SAR 2>&1
{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
 "spec": {"user": "$sa", "groups": ["system:serviceaccounts", "system:serviceaccounts:$tns", "system:authenticated"],
  "resourceAttributes": {"verb": "$verb", "group": "$group", "resource": "$res", "subresource": "$sub",
   "namespace": "$ns", "name": "$name"}}}
SAR
    )
    [[ $got == true ]] && got=yes || { [[ $got == false ]] && got=no; }
    local what="$verb $res${group:+.$group}${sub:+/$sub}${name:+ $name}${ns:+ -n $ns}"
    [[ $got == "$want" ]] && pass "may $what: $got" || fail "may $what: $got, want $want"
  }
  rbac_apply
  lease=chart-rbac-test-appstack-operator
  can yes patch deployments.apps default
  can yes create statefulsets.apps "$tns-b"
  can yes get secrets default
  can yes delete horizontalpodautoscalers.autoscaling default
  can yes watch poddisruptionbudgets.policy ""
  can yes list appstacks.appstack.dev ""
  can no patch appstacks.appstack.dev default
  can yes patch appstacks.appstack.dev/status default
  can yes update appstacks.appstack.dev/finalizers default
  can yes patch networkpolicies.networking.k8s.io default
  can yes get pods default
  can yes create events.events.k8s.io default
  can yes create leases.coordination.k8s.io "$tns"
  can yes update leases.coordination.k8s.io "$tns" "$lease"
  can no update leases.coordination.k8s.io "$tns" kube-scheduler
  can no create leases.coordination.k8s.io kube-system
  can no update appstacks.appstack.dev/status default
  can no delete appstacks.appstack.dev default
  can no create appstacks.appstack.dev default
  can yes list pods default
  can yes patch cronjobs.batch default
  can yes create persistentvolumeclaims default
  can yes create jobs.batch default
  can yes get pods/log default
  can no create pods/exec default
  can yes patch pods default
  can no create pods default
  can yes get configmaps default
  can no patch persistentvolumeclaims default
  can no update deployments.apps default
  can no create events default
  can no delete persistentvolumeclaims default
  can no list nodes ""
  can no '*' '*' ""
  # Narrow to two namespaces: the ClusterRole goes, Roles appear in each.
  kubectl delete clusterrolebinding,clusterrole -l app.kubernetes.io/instance=chart-rbac-test >/dev/null
  rbac_apply --set "watchNamespaces={$tns-a,$tns-b}"
  can yes patch deployments.apps "$tns-a"
  can yes get secrets "$tns-b"
  can yes patch appstacks.appstack.dev/status "$tns-a"
  can no get secrets default
  can no list secrets ""
  can no watch appstacks.appstack.dev ""
fi

rm -rf "$work"
if ((failures)); then
  echo "chart tests: $failures failure(s) ($((SECONDS - t0))s)" >&2
  exit 1
fi
echo "chart tests passed ($((SECONDS - t0))s)"
