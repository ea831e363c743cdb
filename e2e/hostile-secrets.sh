#!/usr/bin/env bash
# The operator's memory against objects anyone may label as its own: RSS with
# 100 Secrets of 650 KB labelled app.kubernetes.io/managed-by=appstack-operator
# in the namespace it watches, against its RSS without them, for one binary
# (BENCH_BIN, default the release build). Part of `make bench`; runs alone as
# `e2e/hostile-secrets.sh`. Then a second, fresh operator starts while the
# Secrets exist: its peak RSS (VmHWM) is what its first list costs. Prints
# one line: "<rss without> <rss with> <peak of a start among them>" in KiB.
set -euo pipefail
BENCH_BIN=${BENCH_BIN:+$(realpath -m -- "$BENCH_BIN")}
cd "$(dirname "$0")/.."
eval "$(e2e/cluster.sh env)"
BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/appstack-operator}
NS=${HOSTILE_NAMESPACE:-appstack-hostile}
PORT=${HOSTILE_HTTP_PORT:-18182}
COUNT=${HOSTILE_SECRETS:-100}
OUT=$(mktemp -d)
[[ -x $BIN ]] || { echo "no $BIN: run make build first (or set BENCH_BIN)" >&2; exit 1; }
cleanup() {
  [[ -n ${OP:-} ]] && kill "$OP" 2>/dev/null || true
  [[ -n ${OP2:-} ]] && kill "$OP2" 2>/dev/null || true
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT
kubectl delete ns "$NS" --ignore-not-found --wait=true --timeout=300s >/dev/null
kubectl create ns "$NS" >/dev/null
RUST_LOG=warn "$BIN" run --namespaces "$NS" --http-addr "127.0.0.1:$PORT" >"$OUT/operator.log" 2>&1 &
OP=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "127.0.0.1:$PORT/readyz" >/dev/null || { echo "operator not ready; log: $OUT/operator.log" >&2; exit 1; }
rss() { awk '/VmRSS/{print $2}' "/proc/$OP/status"; }
sleep 5; without=$(rss)
head -c $((650 * 1024 * 3 / 4)) /dev/urandom | base64 -w0 > "$OUT/blob"
for i in $(seq 1 "$COUNT"); do
  printf '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"junk-%s","labels":{"app.kubernetes.io/managed-by":"appstack-operator"}},"data":{"blob":"%s"}}\n' "$i" "$(cat "$OUT/blob")"
done | jq -s '{apiVersion: "v1", kind: "List", items: .}' > "$OUT/secrets.json"
kubectl -n "$NS" apply --server-side -f "$OUT/secrets.json" >/dev/null
sleep 15; with=$(rss)
RUST_LOG=warn "$BIN" run --namespaces "$NS" --http-addr "127.0.0.1:$((PORT + 1))" >"$OUT/operator2.log" 2>&1 &
OP2=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$((PORT + 1))/readyz" >/dev/null && break; sleep 0.2; done
sleep 10; peak=$(awk '/VmHWM/{print $2}' "/proc/$OP2/status")
echo "$without $with $peak"
