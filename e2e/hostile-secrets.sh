#!/usr/bin/env bash
# The operator's memory against what any tenant may write in the namespace it
# watches, for one binary (BENCH_BIN, default the release build). Part of
# `make bench`; runs alone as `e2e/hostile-secrets.sh`. A fresh operator with
# one stack whose Redis is backed up, then, one group after another:
#   data      100 Secrets of 650 KB labelled app.kubernetes.io/managed-by=appstack-operator
#   labels    60 Secrets with that label and about 1 MB of other labels
#   pods      20 Pods (Pending: no node matches) with the labels of that
#             stack's backup pods and about 1 MB more
#   stacks    30 AppStacks (one component, no replicas) with 240 KiB of annotations
# with its RSS read after each group. Then a second, fresh operator starts
# among them all: its peak RSS (VmHWM) is what its first lists cost. Prints
# one line, in KiB: "<without> <data> <labels> <pods> <stacks> <peak of a start among them>".
set -euo pipefail
BENCH_BIN=${BENCH_BIN:+$(realpath -m -- "$BENCH_BIN")}
cd "$(dirname "$0")/.."
eval "$(e2e/cluster.sh env)"
BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/appstack-operator}
NS=${HOSTILE_NAMESPACE:-appstack-hostile}
PORT=${HOSTILE_HTTP_PORT:-18182}
COUNT=${HOSTILE_SECRETS:-100}
LABELLED=${HOSTILE_LABELLED:-60}
PODS=${HOSTILE_PODS:-20}
STACKS=${HOSTILE_STACKS:-30}
STACK=backed
OUT=$(mktemp -d)
[[ -x $BIN ]] || { echo "no $BIN: run make build first (or set BENCH_BIN)" >&2; exit 1; }
# The Helm-installed operator (if any) must not reconcile this namespace's
# AppStacks at the same time (make bench has already scaled it down).
restore=$(kubectl -n appstack-system get deploy appstack-operator -o jsonpath='{.spec.replicas}' 2>/dev/null || true)
cleanup() {
  [[ -n ${OP:-} ]] && kill "$OP" 2>/dev/null || true
  [[ -n ${OP2:-} ]] && kill "$OP2" 2>/dev/null || true
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1 || true
  [[ -n $restore ]] && kubectl -n appstack-system scale deploy appstack-operator --replicas="$restore" >/dev/null 2>&1 || true
}
trap cleanup EXIT
[[ -n $restore && $restore != 0 ]] && kubectl -n appstack-system scale deploy appstack-operator --replicas=0 >/dev/null
kubectl apply --server-side -f crds/appstack.dev_appstacks.yaml >/dev/null
kubectl delete ns "$NS" --ignore-not-found --wait=true --timeout=300s >/dev/null
kubectl create ns "$NS" >/dev/null
RUST_LOG=warn "$BIN" run --namespaces "$NS" --http-addr "127.0.0.1:$PORT" >"$OUT/operator.log" 2>&1 &
OP=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "127.0.0.1:$PORT/readyz" >/dev/null || { echo "operator not ready; log: $OUT/operator.log" >&2; exit 1; }
rss() { awk '/VmRSS/{print $2}' "/proc/$OP/status"; }
list() { jq -s '{apiVersion: "v1", kind: "List", items: .}'; }
create() { kubectl -n "$NS" apply --server-side -f "$1" >/dev/null; }

# The backed-up stack: its reconcile looks up its backup pods.
kubectl -n "$NS" apply --server-side -f - >/dev/null <<EOT
apiVersion: appstack.dev/v1alpha1
kind: AppStack
metadata: {name: $STACK}
spec:
  components:
  - {name: web, image: appstack.local/appstack-shop:dev, port: 8080, replicas: 0}
  redis:
    image: appstack.local/redis:7
    storage: {size: 1Gi}
    backup: {schedule: "0 3 * * *", target: {volume: {size: 1Gi}}}
  retainDataOnDelete: false
EOT
for _ in $(seq 60); do
  [[ $(kubectl -n "$NS" get aps "$STACK" -o jsonpath='{.status.observedGeneration}') == 1 ]] && break
  sleep 1
done
sleep 5; without=$(rss)

head -c $((650 * 1024 * 3 / 4)) /dev/urandom | base64 -w0 > "$OUT/blob"
for i in $(seq 1 "$COUNT"); do
  printf '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"junk-%s","labels":{"app.kubernetes.io/managed-by":"appstack-operator"}},"data":{"blob":"%s"}}\n' "$i" "$(cat "$OUT/blob")"
done | list > "$OUT/secrets.json"
create "$OUT/secrets.json"
sleep 15; data=$(rss)

# About 1 MB of labels: short keys, values of 63 characters (the most a
# label value may hold); with the managedFields the API server adds, each
# object stays under its 1.5 MiB limit.
jq -n '[range(0; 12500) | {key: "x.io/l\(.)", value: ("v" * 57 + "-" + (. | tostring))}] | from_entries' > "$OUT/labels.json"
for i in $(seq 1 "$LABELLED"); do
  jq -c --arg name "labelled-$i" '{apiVersion: "v1", kind: "Secret",
    metadata: {name: $name, labels: (. + {"app.kubernetes.io/managed-by": "appstack-operator"})}}' "$OUT/labels.json"
done | list > "$OUT/labelled.json"
create "$OUT/labelled.json"
sleep 15; labels=$(rss)

for i in $(seq 1 "$PODS"); do
  jq -c --arg name "planted-$i" --arg stack "$STACK" '{apiVersion: "v1", kind: "Pod",
    metadata: {name: $name, labels: (. + {"app.kubernetes.io/managed-by": "appstack-operator",
      "app.kubernetes.io/instance": $stack, "app.kubernetes.io/name": "redis-backup",
      "app.kubernetes.io/component": "backup", "app.kubernetes.io/part-of": "appstack",
      "batch.kubernetes.io/controller-uid": "00000000-0000-0000-0000-000000000000"})},
    spec: {nodeSelector: {"bench.appstack.dev/no-such-node": "true"},
      containers: [{name: "sleep", image: "appstack.local/tools:1", command: ["sleep", "3600"]}]}}' "$OUT/labels.json"
done | list > "$OUT/pods.json"
create "$OUT/pods.json"
sleep 25; pods=$(rss)

# In a file: 240 KiB is more than one command-line argument may hold.
jq -nc '[range(0; 200) | {key: "bench.appstack.dev/a\(.)", value: ("a" * 1200)}] | from_entries' >"$OUT/annotations.json"
for i in $(seq 1 "$STACKS"); do
  jq -nc --arg name "annotated-$i" --slurpfile a "$OUT/annotations.json" '{apiVersion: "appstack.dev/v1alpha1", kind: "AppStack",
    metadata: {name: $name, annotations: $a[0]},
    spec: {components: [{name: "web", image: "appstack.local/appstack-shop:dev", port: 8080, replicas: 0}]}}'
done | list > "$OUT/stacks.json"
create "$OUT/stacks.json"
for _ in $(seq 120); do
  done_=$(kubectl -n "$NS" get aps -o json | jq '[.items[] | select(.status.observedGeneration == .metadata.generation)] | length')
  (( done_ == STACKS + 1 )) && break
  sleep 1
done
sleep 10; stacks=$(rss)

RUST_LOG=warn "$BIN" run --namespaces "$NS" --http-addr "127.0.0.1:$((PORT + 1))" >"$OUT/operator2.log" 2>&1 &
OP2=$!
for _ in $(seq 300); do curl -sf "127.0.0.1:$((PORT + 1))/readyz" >/dev/null && break; sleep 0.2; done
sleep 10; peak=$(awk '/VmHWM/{print $2}' "/proc/$OP2/status")
echo "$without $data $labels $pods $stacks $peak"
