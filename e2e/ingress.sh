#!/usr/bin/env bash
# Traefik as the local cluster's ingress controller, for the routes scenario:
# built lazily (not by `up`: a cold build of Traefik takes minutes), then a
# pod in namespace `traefik` serving IngressClass `traefik`. Idempotent; a
# warm run takes seconds.
#
#   e2e/ingress.sh          build (cached), import the image, apply, wait Ready
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/tools.sh
source "$E2E_DIR/lib/tools.sh"

t0=$SECONDS
build_tools traefik
"$E2E_DIR/images/build.sh" traefik
eval "$("$E2E_DIR/cluster.sh" env)"
sed "s/\${TRAEFIK_VERSION}/$TRAEFIK_VERSION/" "$E2E_DIR/cluster/ingress.yaml" |
  kubectl apply --server-side --force-conflicts --field-manager appstack-cluster -f - >/dev/null
kubectl -n traefik rollout status deployment/traefik --timeout=180s >/dev/null
printf '  [ingress] traefik %s ready (%ss)\n' "$TRAEFIK_VERSION" "$((SECONDS - t0))" >&2
