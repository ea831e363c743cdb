#!/usr/bin/env bash
# make bench: the operator at scale on the local cluster, as ratios against
# baselines measured in the same run (absolute timings only for child latency):
#   converge ratio  = time for the operator to converge N AppStacks
#                     / time for one `kubectl apply --server-side` of the same
#                       child objects (what the API server itself costs)
#                     and / time for 16 such applies in parallel, each with a
#                       16th of the objects (the operator's default concurrency
#                       is 16, so this is the closer limit)
#   child latency   = p50 and p99 over stacks of the time from an AppStack's
#                     creation to the creation of the last of its children, in
#                     seconds: compare only runs on the same machine
#   idle writes     = child writes (creates and applies) sent during an idle
#                     minute, started once no child's resourceVersion has
#                     moved for 10 s (goal 0)
#   restart changes = child resourceVersions moved by an operator restart (goal 0)
#   memory ratio    = operator RSS with N stacks / RSS with none
#   hostile ratios  = RSS among what any tenant may write / RSS without, group
#                     by group (goal ~1, at most +10 MiB): 100 Secrets of 650 KB
#                     labelled managed-by=appstack-operator; then 60 such
#                     Secrets with 1 MB of labels; then 20 Pods with a backed-up
#                     stack's backup-pod labels and 1 MB more; then 30 AppStacks
#                     with 240 KiB of annotations (e2e/hostile-secrets.sh)
# The stacks have two components with replicas 0 and no stores, so the one
# real node runs no pods for them: this measures the controller, not kubelet.
# BENCH_BIN=path/to/appstack-operator runs another build (e.g. an older commit's).
set -euo pipefail
BENCH_BIN=${BENCH_BIN:+$(realpath -m -- "$BENCH_BIN")}
cd "$(dirname "$0")/.."
eval "$(e2e/cluster.sh env)"
N=${BENCH_STACKS:-1000}
NS=${BENCH_NAMESPACE:-appstack-bench}
BASE_NS=${NS}-baseline
CLIENTS=16 # parallel baseline: the operator's default --concurrency
PORT=${BENCH_HTTP_PORT:-18181}
OUT=${BENCH_OUT:-$(mktemp -d)}
mkdir -p "$OUT"
BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/appstack-operator}
T0=$SECONDS

log() { printf '==> %s\n' "$*"; }
[[ -x $BIN ]] || { echo "no $BIN: run make build first (or set BENCH_BIN to an operator binary)" >&2; exit 1; }
# The Helm-installed operator (if any) must not reconcile the bench namespace
# at the same time: scale it down for the run and back afterwards.
restore=$(kubectl -n appstack-system get deploy appstack-operator -o jsonpath='{.spec.replicas}' 2>/dev/null || true)
cleanup() {
  [[ -n ${OP:-} ]] && kill "$OP" 2>/dev/null || true
  kubectl delete ns "$NS" "$BASE_NS" --wait=false >/dev/null 2>&1 || true
  [[ -n $restore ]] && kubectl -n appstack-system scale deploy appstack-operator --replicas="$restore" >/dev/null 2>&1 || true
}
trap cleanup EXIT
[[ -n $restore ]] && kubectl -n appstack-system scale deploy appstack-operator --replicas=0 >/dev/null
kubectl apply --server-side -f crds/appstack.dev_appstacks.yaml >/dev/null
drop_ns() { # name: delete it with everything in it and wait until it is gone
  kubectl delete ns "$1" --ignore-not-found --wait=true --timeout=600s >/dev/null \
    || { echo "namespace $1 not gone after 600s: wait for it (kubectl get ns $1), then rerun" >&2; exit 1; }
}
fresh_ns() { drop_ns "$1"; kubectl create ns "$1" >/dev/null; }
fresh_ns "$NS"; fresh_ns "$BASE_NS"

stack() { # name
  cat <<EOT
---
apiVersion: appstack.dev/v1alpha1
kind: AppStack
metadata: {name: $1}
spec:
  components:
  - {name: web, image: appstack.local/appstack-shop:dev, port: 8080, replicas: 0}
  - {name: api, image: appstack.local/appstack-shop:dev, port: 9090, replicas: 0}
EOT
}
log "rendering $N stacks"
for i in $(seq -w 1 "$N"); do stack "s$i"; done > "$OUT/stacks.yaml"

start_operator() {
  RUST_LOG=warn "$BIN" run --namespaces "$NS" --http-addr "127.0.0.1:$PORT" --log-format json \
    >>"$OUT/operator.log" 2>&1 &
  OP=$!
  for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && return; sleep 0.2; done
  echo "operator did not become ready; log: $OUT/operator.log" >&2; exit 1
}
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$OP/status"; }
metric() { curl -sf "127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1==m{print $2}'; }
converged() { # stacks whose status reports the current generation
  kubectl -n "$NS" get aps -o json | jq '[.items[] | select(.status.observedGeneration == .metadata.generation)] | length'
}

log "baseline: the children of $N stacks applied without the operator"
first=s$(printf "%0${#N}d" 1)
# The operator makes the children of one stack; renamed N times, they are the
# baseline's objects.
start_operator
stack "$first" | kubectl -n "$NS" apply --server-side -f - >/dev/null
for _ in $(seq 60); do (( $(converged) == 1 )) && break; sleep 1; done
kill "$OP"; wait "$OP" 2>/dev/null || true; OP=
kubectl -n "$NS" get deploy,svc,networkpolicy -l app.kubernetes.io/instance="$first" -o json \
  | jq -c '.items[] | del(.metadata.uid,.metadata.resourceVersion,.metadata.creationTimestamp,.metadata.managedFields,.metadata.ownerReferences,.metadata.generation,.metadata.annotations,.status,.spec.clusterIP,.spec.clusterIPs) | .metadata.namespace = "'"$BASE_NS"'"' > "$OUT/one.jsonl"
[[ -s $OUT/one.jsonl ]] || { echo "the operator made no children for the template stack; log: $OUT/operator.log" >&2; exit 1; }
K=$(wc -l < "$OUT/one.jsonl") # children per stack
fresh_ns "$NS"
for i in $(seq -w 1 "$N"); do sed "s/\"$first/\"s$i/g; s/$first-/s$i-/g" "$OUT/one.jsonl"; done > "$OUT/baseline.jsonl"
list() { jq -s '{apiVersion: "v1", kind: "List", items: .}'; }
list < "$OUT/baseline.jsonl" > "$OUT/baseline.json"
# The parallel baseline's lists: whole stacks, dealt round-robin to the clients.
rm -f "$OUT"/part-*.json "$OUT"/part-*.jsonl
awk -v k="$K" -v c="$CLIENTS" -v out="$OUT/part-" \
  '{ f = out (int((NR - 1) / k) % c) ".jsonl"; print > f }' "$OUT/baseline.jsonl"
for f in "$OUT"/part-*.jsonl; do list < "$f" > "${f%l}"; done
b0=$SECONDS
kubectl apply --server-side -f "$OUT/baseline.json" >/dev/null
baseline=$((SECONDS - b0))
log "baseline: ${baseline}s for one apply; again from scratch with $CLIENTS clients at once"
fresh_ns "$BASE_NS"
p0=$SECONDS
pids=()
for f in "$OUT"/part-*.json; do kubectl apply --server-side -f "$f" >/dev/null & pids+=($!); done
for p in "${pids[@]}"; do
  wait "$p" || { echo "a parallel baseline apply failed (its error is above); rerun make bench" >&2; exit 1; }
done
parallel=$((SECONDS - p0))
log "baseline: ${parallel}s for $CLIENTS parallel applies"
# Gone before the operator starts: the controller manager's work on the
# baseline's objects (ReplicaSets, EndpointSlices) must not overlap its run.
drop_ns "$BASE_NS"

log "operator: converge $N AppStacks"
start_operator
rss0=$(rss_kib)
c0=$SECONDS
kubectl -n "$NS" apply --server-side -f "$OUT/stacks.yaml" >/dev/null
while (( $(converged) < N )); do
  ((SECONDS - c0 < 1800)) || { echo "not converged after 1800s ($(converged)/$N)" >&2; exit 1; }
  sleep 2
done
converge=$((SECONDS - c0))
rss1=$(rss_kib)
log "operator: ${converge}s to converge, RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB"

# Per stack: the newest creationTimestamp among its children (by instance
# label) minus the stack's own. Both come from the API server's clock, with
# 1 s resolution, so each latency is whole seconds, up to 1 s off either way.
# Prints: stacks without all K children, one of them, p50, p99 (nearest rank).
lat=$(kubectl -n "$NS" get aps,deploy,svc,networkpolicy -o json | jq -r --argjson k "$K" '
  def created: .metadata.creationTimestamp | fromdateiso8601;
  (reduce (.items[] | select(.kind != "AppStack")) as $c ({};
    .[$c.metadata.labels["app.kubernetes.io/instance"] // ""] += [$c | created])) as $children
  | [.items[] | select(.kind == "AppStack") | {name: .metadata.name, t: created, c: ($children[.metadata.name] // [])}] as $stacks
  | [$stacks[] | select(.c | length != $k) | .name] as $short
  | [$stacks[] | select(.c | length == $k) | (.c | max) - .t] | sort as $l
  | def pct($p): if $l == [] then "-" else $l[($l | length) * $p | ceil - 1] end;
    "\($short | length) \($short[0] // "-") \(pct(0.5)) \(pct(0.99))"')
read -r short example p50 p99 <<<"$lat"
((short == 0)) || { echo "$short converged stacks lack some of their $K children (e.g. $example: kubectl -n $NS get deploy,svc,networkpolicy -l app.kubernetes.io/instance=$example); log: $OUT/operator.log" >&2; exit 1; }
log "operator: creation to all $K children p50 ${p50}s, p99 ${p99}s"

snap() { kubectl -n "$NS" get deploy,svc,networkpolicy -o json | jq -r '.items[] | "\(.kind)/\(.metadata.name) \(.metadata.resourceVersion)"' | sort; }
# The idle minute starts once the cluster has settled: the controller
# manager writes each new Deployment's status, some of it well after the
# stacks report converged, and those writes are not the operator's.
log "waiting until no child's resourceVersion moves for 10s"
s0=$SECONDS
snap > "$OUT/settle"
while sleep 10; snap > "$OUT/settle.next"; ! cmp -s "$OUT/settle" "$OUT/settle.next"; do
  ((SECONDS - s0 < 600)) || { echo "children still changing after 600s: measuring anyway" >&2; break; }
  mv "$OUT/settle.next" "$OUT/settle"
done
settled=$((SECONDS - s0))

log "idle minute"
a0=$(metric appstack_applies_total); sleep 60; a1=$(metric appstack_applies_total)
idle=$(( ${a1%.*} - ${a0%.*} ))

log "operator restart"
snap > "$OUT/before"
kill "$OP"; wait "$OP" 2>/dev/null || true
r0=$SECONDS; start_operator
# Wait until the restarted operator has looked at every stack once.
while (( $(metric appstack_reconciles_total | cut -d. -f1) < N )); do
  ((SECONDS - r0 < 900)) || break; sleep 2
done
resync=$((SECONDS - r0))
snap > "$OUT/after"
moved=$(comm -3 "$OUT/before" "$OUT/after" | grep -c . || true)

log "hostile input: RSS of a fresh operator without and with what any tenant may write"
read -r hostile0 hostile1 hostile_labels hostile_pods hostile_stacks hostile_start < <(BENCH_BIN="$BIN" e2e/hostile-secrets.sh)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b == 0) b = 1; printf "%.2f", a / b }'; }
cat <<EOT | tee "$OUT/summary.md"

| measure ($N stacks, $((N * K)) children) | value |
|---|---|
| converge time / baseline apply time | $(ratio "$converge" "$baseline") (${converge}s / ${baseline}s) |
| converge time / $CLIENTS-client baseline apply time | $(ratio "$converge" "$parallel") (${converge}s / ${parallel}s) |
| AppStack creation to all $K children, p50 | ${p50}s |
| AppStack creation to all $K children, p99 | ${p99}s |
| restart resync time / baseline apply time | $(ratio "$resync" "$baseline") (${resync}s / ${baseline}s) |
| restart resync time / $CLIENTS-client baseline apply time | $(ratio "$resync" "$parallel") (${resync}s / ${parallel}s) |
| child applies during an idle minute (after ${settled}s settling) | $idle |
| child resourceVersions moved by a restart | $((moved / 2)) |
| operator RSS with $N stacks / with none | $(ratio "$rss1" "$rss0") ($((rss1 / 1024)) MiB / $((rss0 / 1024)) MiB) |
| operator RSS with 100 hostile 650 KB Secrets / without | $(ratio "$hostile1" "$hostile0") ($((hostile1 / 1024)) MiB / $((hostile0 / 1024)) MiB) |
| ... and 60 Secrets with 1 MB of labels / without | $(ratio "$hostile_labels" "$hostile0") ($((hostile_labels / 1024)) MiB / $((hostile0 / 1024)) MiB) |
| ... and 20 Pods with backup-pod labels and 1 MB more / without | $(ratio "$hostile_pods" "$hostile0") ($((hostile_pods / 1024)) MiB / $((hostile0 / 1024)) MiB) |
| ... and 30 AppStacks with 240 KiB of annotations / without | $(ratio "$hostile_stacks" "$hostile0") ($((hostile_stacks / 1024)) MiB / $((hostile0 / 1024)) MiB) |
| peak RSS of an operator starting among them all / RSS without | $(ratio "$hostile_start" "$hostile0") ($((hostile_start / 1024)) MiB / $((hostile0 / 1024)) MiB) |
EOT
log "bench done in $((SECONDS - T0))s; details in $OUT"
