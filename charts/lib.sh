# shellcheck shell=bash disable=SC2034  # sourced; the scripts use these names
# Sourced by the chart scripts: repository paths and a helm binary built from
# its Go module (e2e/lib/tools.sh, cached outside the repository).
CHARTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CHARTS_DIR/.." && pwd)
CHART="$CHARTS_DIR/appstack-operator"
# shellcheck source=../e2e/lib/tools.sh
source "$REPO_ROOT/e2e/lib/tools.sh"
# Renders and lints target the local cluster's Kubernetes version explicitly: a
# helm built with `go install` lacks the release ldflags and would assume 1.20
# (below the chart's kubeVersion), and the rendered deploy/ must not depend on
# which helm build made it.
KUBE_VERSION=$K8S_VERSION

# find_helm: sets HELM. $HELM wins; then the cached build, building it if absent.
find_helm() {
  if [[ -n "${HELM:-}" ]]; then return 0; fi
  HELM="$(tool_bin_dir helm)/helm"
  if [[ ! -x "$HELM" ]]; then
    echo "helm $HELM_VERSION is not cached yet; building it (once, a few minutes)" >&2
    build_tools helm
  fi
}
