#!/usr/bin/env bash
# make demo: runs AppStack on the local cluster (or CLUSTER=current) and plays
# the story: log in, kill the pod that served you, still logged in; kill the
# Redis and PostgreSQL pods, the session and the cart are still there.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(e2e/cluster.sh env)"

NS=${DEMO_NAMESPACE:-demo}
RELEASE=appstack-operator
OPERATOR_NS=appstack-system
T0=$SECONDS

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; STEP_T=$SECONDS; }
done_() { printf '    (%ss)\n' $((SECONDS - STEP_T)); }
say() { printf '    %s\n' "$*"; }
die() { printf 'demo failed: %s\n' "$*" >&2; exit 1; }

# The store images: on the local cluster (no registry) the local builds of the
# default majors; elsewhere the example's own (the operator's defaults, pulled),
# unless APPSTACK_REDIS_IMAGE / APPSTACK_POSTGRES_IMAGE name others.
if [[ "${CLUSTER:-local}" == local ]]; then
  REDIS_IMAGE=${APPSTACK_REDIS_IMAGE:-appstack.local/redis:8}
  POSTGRES_IMAGE=${APPSTACK_POSTGRES_IMAGE:-appstack.local/postgres:17}
else
  REDIS_IMAGE=${APPSTACK_REDIS_IMAGE:-}
  POSTGRES_IMAGE=${APPSTACK_POSTGRES_IMAGE:-}
fi
# with_store_images < manifest: the example with `image:` added under redis: and
# postgres: when set (the example names none).
with_store_images() {
  awk -v r="$REDIS_IMAGE" -v p="$POSTGRES_IMAGE" '
    {print}
    /^  redis:$/ && r != "" {print "    image: " r}
    /^  postgres:$/ && p != "" {print "    image: " p}'
}

step "Installing the operator with Helm (2 replicas, leader election)"
values=()
if [[ "${CLUSTER:-local}" == local ]]; then
  values=(-f charts/values-local-cluster.yaml)
elif [[ -f ${APPSTACK_CACHE:-$HOME/.cache/appstack}/current/values.yaml ]]; then
  # Written by e2e/images/load-current.sh: the operator image it loaded or was told.
  values=(-f "${APPSTACK_CACHE:-$HOME/.cache/appstack}/current/values.yaml")
fi
helm upgrade --install "$RELEASE" charts/appstack-operator -n "$OPERATOR_NS" --create-namespace \
  "${values[@]}" --wait --timeout 180s >/dev/null
kubectl -n "$OPERATOR_NS" get pods -l app.kubernetes.io/name=appstack-operator -o wide --no-headers | sed 's/^/    /'
done_

step "Applying deploy/examples/shop.yaml in namespace $NS (Redis ${REDIS_IMAGE:-redis:7.4}, PostgreSQL ${POSTGRES_IMAGE:-postgres:17})"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
manifest=$(with_store_images <deploy/examples/shop.yaml)
if [[ -n ${APPSTACK_SHOP_IMAGE:-} ]]; then
  manifest=${manifest//appstack.local\/appstack-shop:dev/$APPSTACK_SHOP_IMAGE}
fi
[[ -z $REDIS_IMAGE || $manifest == *"image: $REDIS_IMAGE"* ]] || die "could not set the Redis image in deploy/examples/shop.yaml"
kubectl -n "$NS" apply --server-side -f - <<<"$manifest" >/dev/null
say "waiting for the AppStack to be Ready (web, Redis, PostgreSQL)..."
kubectl -n "$NS" wait --for=condition=Ready aps/shop --timeout=300s >/dev/null \
  || { kubectl -n "$NS" get aps shop -o yaml | sed -n '/^status:/,$p'; die "AppStack shop not Ready after 300s"; }
kubectl -n "$NS" get aps shop | sed 's/^/    /'
kubectl -n "$NS" get deploy,statefulset,svc,hpa,pvc -o name | sed 's/^/    /'
done_

# The local cluster's Service addresses are reachable from this host (kube-proxy
# runs here); on another cluster, go through a port-forward.
if [[ "${CLUSTER:-local}" == local ]]; then
  BASE="http://$(kubectl -n "$NS" get svc shop-web -o jsonpath='{.spec.clusterIP}'):8080"
else
  kubectl -n "$NS" port-forward svc/shop-web 18080:8080 >/dev/null 2>&1 &
  PF=$!; trap 'kill $PF 2>/dev/null || true' EXIT; sleep 2
  BASE=http://127.0.0.1:18080
fi

# req METHOD PATH [JSON]: prints "<status> <served-by> <body>"
req() {
  local out hdr
  hdr=$(mktemp)
  out=$(curl -sS --max-time 5 -D "$hdr" -X "$1" -H "Authorization: Bearer ${TOKEN:-}" \
    -H 'Content-Type: application/json' ${3:+--data "$3"} "$BASE$2") || { rm -f "$hdr"; return 1; }
  printf '%s %s %s\n' "$(awk 'NR==1{print $2}' "$hdr")" \
    "$(awk 'tolower($1)=="x-served-by:"{print $2}' "$hdr" | tr -d '\r')" "$out"
  rm -f "$hdr"
}
# until_ok DESC SECONDS METHOD PATH [NOT_FROM_POD]: retries until HTTP 200
# (from a pod other than NOT_FROM_POD, if given), prints the answer.
until_ok() {
  local desc=$1 limit=$2 not_from=${5:-} start=$SECONDS answer
  while ((SECONDS - start < limit)); do
    if answer=$(req "$3" "$4" 2>/dev/null) && [[ $answer == 200* ]] \
      && { [[ -z $not_from ]] || [[ $(awk '{print $2}' <<<"$answer") != "$not_from" ]]; }; then
      say "$desc after $((SECONDS - start))s: $answer"; return 0
    fi
    sleep 0.5
  done
  die "$desc: no 200 within ${limit}s (last: ${answer:-no answer})"
}

step "Logging in and filling a cart"
TOKEN=
login=$(req POST /login '{"user":"ada"}') || die "login failed"
TOKEN=$(sed -E 's/.*"token":"([^"]+)".*/\1/' <<<"$login")
[[ -n "$TOKEN" && "$TOKEN" != "$login" ]] || die "no token in: $login"
say "logged in as ada; token ${TOKEN:0:12}..."
req POST /cart/items '{"sku":"cattle-not-pets","qty":2}' >/dev/null
req POST /cart/items '{"sku":"redis-sessions","qty":1}' >/dev/null
me=$(req GET /me); served=$(awk '{print $2}' <<<"$me")
say "GET /me -> $me"
say "GET /cart -> $(req GET /cart)"
done_

step "Deleting the pod that served us ($served)"
kubectl -n "$NS" delete pod "$served" --wait=false >/dev/null
until_ok "still logged in, served by another pod" 60 GET /me "$served"
done_

step "Deleting the Redis pod (sessions live there, AOF on a PVC)"
kubectl -n "$NS" delete pod shop-redis-0 >/dev/null
kubectl -n "$NS" wait --for=condition=Ready pod/shop-redis-0 --timeout=120s >/dev/null
until_ok "session survived the Redis restart" 60 GET /me
done_

step "Deleting the PostgreSQL pod (carts live there, on a PVC)"
kubectl -n "$NS" delete pod shop-postgres-0 >/dev/null
kubectl -n "$NS" wait --for=condition=Ready pod/shop-postgres-0 --timeout=120s >/dev/null
until_ok "cart survived the PostgreSQL restart" 60 GET /cart
done_

printf '\n\033[1mThe story held: any pod died, nobody noticed, nothing was lost (%ss in all).\033[0m\n' $((SECONDS - T0))
cat <<EOT

Try it by hand:
  eval "\$(e2e/cluster.sh env)"
  kubectl -n $NS get aps shop                 # Ready, components, stores
  kubectl -n $NS get deploy,sts,svc,hpa,pvc,secret
  TOKEN=\$(curl -s -X POST $BASE/login -d '{"user":"you"}' -H 'Content-Type: application/json' | jq -r .token)
  curl -si $BASE/me -H "Authorization: Bearer \$TOKEN" | grep -i x-served-by
  kubectl -n $NS delete pod -l app.kubernetes.io/instance=shop,app.kubernetes.io/name=web
  kubectl explain appstack.spec.components
  kubectl -n $NS delete aps shop              # children go; PVCs (your data) stay
EOT
