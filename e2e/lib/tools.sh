#!/usr/bin/env bash
# Builds the pinned Go tools the local cluster needs (Kubernetes, etcd, CoreDNS,
# metrics-server, helm) with the plain `go` client from their published modules,
# into a cache keyed by version, outside the repository. Sourced by cluster.sh;
# `e2e/lib/tools.sh [name...]` builds the named ones (default: all), among:
# etcd kubernetes coredns metrics-server helm local-path-provisioner kube-router
# versitygw traefik actionlint helm-docs kstatus-check.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.7}
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.9.0}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
# The PVC provisioner behind the default StorageClass (the one kind ships).
LOCAL_PATH_VERSION=${LOCAL_PATH_VERSION:-v0.0.30}
# NetworkPolicy enforcement (firewall-only mode: iptables + ipset, any CNI).
# The only version the module proxy serves; it has known security reports,
# acceptable for a throwaway test cluster, never a production choice.
KUBE_ROUTER_VERSION=${KUBE_ROUTER_VERSION:-v2.1.0}
# An S3-compatible server over a directory, for backups to object storage
# (the module proxy serves no MinIO).
VERSITYGW_VERSION=${VERSITYGW_VERSION:-v1.8.0}
# An ingress controller (Ingress and Gateway API) for the routes scenario; built
# lazily (`e2e/cluster.sh ingress`), not by `up`. v3.7.x needs a nested module
# the proxy does not serve; v3.6.12 matches the cluster's client-go (v0.34).
TRAEFIK_VERSION=${TRAEFIK_VERSION:-v3.6.12}
# The Gateway API CRDs come from this module (`go mod download`, never committed);
# the version Traefik $TRAEFIK_VERSION is built against.
GATEWAY_API_VERSION=${GATEWAY_API_VERSION:-v1.4.0}

# Checks of the repository's own files, built when `make lint` (actionlint: the
# release workflow) and `make generated-check` (helm-docs: the chart's values
# table) first need them, never by `up`.
ACTIONLINT_VERSION=${ACTIONLINT_VERSION:-v1.7.12}
HELM_DOCS_VERSION=${HELM_DOCS_VERSION:-v1.14.2}

APPSTACK_CACHE=${APPSTACK_CACHE:-$HOME/.cache/appstack}
TOOLS_DIR="$APPSTACK_CACHE/tools"

K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
# Staging modules of k8s.io/kubernetes: its go.mod points them at ./staging, so a
# consumer module must point each at its published v0.x twin.
K8S_STAGING=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
  cloud-provider cluster-bootstrap code-generator component-base component-helpers
  controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
  endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
  kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
  sample-apiserver sample-cli-plugin sample-controller)

tool_bin_dir() { # name -> directory holding that tool's binaries
  case "$1" in
    kubernetes) echo "$TOOLS_DIR/kubernetes-$K8S_VERSION/bin" ;;
    etcd) echo "$TOOLS_DIR/etcd-$ETCD_VERSION/bin" ;;
    coredns) echo "$TOOLS_DIR/coredns-$COREDNS_VERSION/bin" ;;
    metrics-server) echo "$TOOLS_DIR/metrics-server-$METRICS_SERVER_VERSION/bin" ;;
    helm) echo "$TOOLS_DIR/helm-$HELM_VERSION-k${K8S_VERSION#v}/bin" ;;
    local-path-provisioner) echo "$TOOLS_DIR/local-path-provisioner-$LOCAL_PATH_VERSION/bin" ;;
    kube-router) echo "$TOOLS_DIR/kube-router-$KUBE_ROUTER_VERSION/bin" ;;
    versitygw) echo "$TOOLS_DIR/versitygw-$VERSITYGW_VERSION/bin" ;;
    traefik) echo "$TOOLS_DIR/traefik-$TRAEFIK_VERSION/bin" ;;
    actionlint) echo "$TOOLS_DIR/actionlint-$ACTIONLINT_VERSION/bin" ;;
    helm-docs) echo "$TOOLS_DIR/helm-docs-$HELM_DOCS_VERSION/bin" ;;
    kstatus-check) echo "$TOOLS_DIR/kstatus-check-$(_kstatus_check_key)/bin" ;;
    *) echo "unknown tool $1" >&2; return 1 ;;
  esac
}

# tool_built NAME: true when the tool's binaries are in the cache.
tool_built() {
  local dir b
  dir=$(tool_bin_dir "$1") || return 1
  case $1 in
    kubernetes) for b in "${K8S_BINARIES[@]}"; do [[ -x $dir/$b ]] || return 1; done ;;
    *) [[ -x $dir/$1 ]] ;;
  esac
}

_log() { printf '  [tools] %s\n' "$*" >&2; }

# _go_install <module/cmd path> <version> <dest dir> [binary name] [extra ldflags]
_go_install() {
  local pkg=$1 version=$2 dest=$3 name=${4:-$(basename "$1")} extra=${5:-}
  [[ -x "$dest/$name" ]] && return 0
  local t0=$SECONDS
  _log "building $name $version (go install $pkg@$version; cached afterwards)"
  mkdir -p "$dest"
  GOBIN="$dest.tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w $extra" "$pkg@$version"
  mv "$dest.tmp/$(basename "$pkg")" "$dest/$name"
  rmdir "$dest.tmp" 2>/dev/null || true
  _log "built $name in $((SECONDS - t0))s"
}

build_kubernetes() {
  local dest; dest=$(tool_bin_dir kubernetes)
  local missing=()
  for b in "${K8S_BINARIES[@]}"; do [[ -x "$dest/$b" ]] || missing+=("$b"); done
  ((${#missing[@]})) || return 0
  local src="$TOOLS_DIR/src/kubernetes-$K8S_VERSION" minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  mkdir -p "$src" "$dest"
  {
    echo "module appstack.dev/k8s-build"
    echo "go 1.24"
    echo "require k8s.io/kubernetes $K8S_VERSION"
    for m in "${K8S_STAGING[@]}"; do echo "replace k8s.io/$m => k8s.io/$m ${K8S_VERSION/v1./v0.}"; done
  } > "$src/go.mod"
  printf '//go:build tools\npackage tools\nimport _ "k8s.io/kubernetes/cmd/kubelet"\n' > "$src/tools.go"
  local t0=$SECONDS
  _log "resolving k8s.io/kubernetes $K8S_VERSION modules"
  (cd "$src" && { GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod download; })
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=2026-01-01T00:00:00Z"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  # One `go build` for all of them: the shared packages are planned and compiled
  # once, and compiling and linking overlap across binaries on every core.
  local t1=$SECONDS pkgs=() tmp="$dest.tmp"
  for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  _log "building ${missing[*]} $K8S_VERSION (one go build)"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$tmp/" "${pkgs[@]}")
  for b in "${missing[@]}"; do mv "$tmp/$b" "$dest/$b"; done
  rmdir "$tmp"
  _log "built ${missing[*]} in $((SECONDS - t1))s; kubernetes binaries ready in $((SECONDS - t0))s"
}

# etcd's server module carries replace lines, which `go install mod@ver` refuses,
# so it is built from a wrapper module that requires it.
build_etcd() {
  local dest; dest=$(tool_bin_dir etcd)
  [[ -x "$dest/etcd" ]] && return 0
  local src="$TOOLS_DIR/src/etcd-$ETCD_VERSION" t0=$SECONDS
  _log "building etcd $ETCD_VERSION (wrapper module; cached afterwards)"
  mkdir -p "$src" "$dest"
  printf 'module appstack.dev/etcd-build\ngo 1.24\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$src/go.mod"
  printf '//go:build tools\npackage tools\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$src/tools.go"
  (cd "$src" && { GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true; })
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$dest/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$dest/etcd.tmp" "$dest/etcd"
  _log "built etcd in $((SECONDS - t0))s"
}
build_coredns() { _go_install github.com/coredns/coredns "$COREDNS_VERSION" "$(tool_bin_dir coredns)" coredns; }
build_metrics_server() { _go_install sigs.k8s.io/metrics-server/cmd/metrics-server "$METRICS_SERVER_VERSION" "$(tool_bin_dir metrics-server)" metrics-server; }
# Helm's release builds stamp its version and the Kubernetes version that
# `helm lint`/`helm template` assume without a cluster; stamp the local one's.
build_helm() {
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ld="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  local p
  for p in pkg/chartutil pkg/lint/rules; do
    ld+=" -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=$minor"
  done
  _go_install helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$(tool_bin_dir helm)" helm "$ld"
}
build_local_path_provisioner() {
  _go_install github.com/rancher/local-path-provisioner "$LOCAL_PATH_VERSION" \
    "$(tool_bin_dir local-path-provisioner)" local-path-provisioner
}

build_kube_router() {
  _go_install github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$KUBE_ROUTER_VERSION" \
    "$(tool_bin_dir kube-router)" kube-router
}

build_versitygw() {
  _go_install github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION" \
    "$(tool_bin_dir versitygw)" versitygw
}

build_actionlint() {
  _go_install github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION" \
    "$(tool_bin_dir actionlint)" actionlint \
    "-X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION"
}

# Our own small program over kstatus (e2e/kstatus, pinned by its go.mod): keyed
# by what it is built from.
_kstatus_check_key() {
  local dir; dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../kstatus" && pwd)"
  cat "$dir/go.mod" "$dir/go.sum" "$dir/main.go" | sha256sum | cut -c1-12
}

build_kstatus_check() {
  local dest; dest=$(tool_bin_dir kstatus-check)
  [[ -x "$dest/kstatus-check" ]] && return 0
  local src t0=$SECONDS
  src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../kstatus" && pwd)"
  _log "building kstatus-check (e2e/kstatus; cached afterwards)"
  mkdir -p "$dest"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dest/kstatus-check.tmp" .)
  mv "$dest/kstatus-check.tmp" "$dest/kstatus-check"
  _log "built kstatus-check in $((SECONDS - t0))s"
}

build_helm_docs() {
  _go_install github.com/norwoodj/helm-docs/cmd/helm-docs "$HELM_DOCS_VERSION" \
    "$(tool_bin_dir helm-docs)" helm-docs
}

# Traefik's go.mod carries replace lines (its forks of two libraries), which
# `go install mod@ver` refuses: a wrapper module requires it and repeats them.
build_traefik() {
  local dest; dest=$(tool_bin_dir traefik)
  [[ -x "$dest/traefik" ]] && return 0
  local src="$TOOLS_DIR/src/traefik-$TRAEFIK_VERSION" t0=$SECONDS mod
  _log "building traefik $TRAEFIK_VERSION (wrapper module; cached afterwards)"
  mkdir -p "$src" "$dest"
  mod=$(GOFLAGS=-mod=mod go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  {
    printf 'module appstack.dev/traefik-build\ngo 1.25\nrequire github.com/traefik/traefik/v3 %s\n' "$TRAEFIK_VERSION"
    # Repeat upstream's replace block verbatim (module paths and versions only).
    sed -n '/^replace (/,/^)/p' "$mod"
  } >"$src/go.mod"
  printf '//go:build tools\npackage tools\nimport _ "github.com/traefik/traefik/v3/cmd/traefik"\n' >"$src/tools.go"
  (cd "$src" && { GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true; })
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
    -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
    -o "$dest/traefik.tmp" github.com/traefik/traefik/v3/cmd/traefik)
  mv "$dest/traefik.tmp" "$dest/traefik"
  _log "built traefik in $((SECONDS - t0))s"
}

# The Gateway API's standard-channel CRDs, from the module (not committed).
gateway_api_crds() {
  local dir
  dir=$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  echo "$dir/config/crd/standard"
}

build_tools() {
  local names=("$@")
  ((${#names[@]})) || names=(etcd kubernetes coredns metrics-server helm local-path-provisioner kube-router versitygw)
  mkdir -p "$TOOLS_DIR"
  # One build at a time per cache: a second caller waits, then finds the binaries.
  (
    if ! flock -n 7; then
      _log "waiting for another build of the tools to finish"
      flock 7
    fi
    for n in "${names[@]}"; do "build_${n//-/_}"; done
  ) 7>"$TOOLS_DIR/.lock"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  build_tools "$@"
fi
