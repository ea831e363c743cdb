#!/usr/bin/env bash
# The image step of CLUSTER=current (make images, make demo): the operator's and
# the shop's images as OCI archives (e2e/images/build.sh --no-import), loaded into
# a kind cluster with `kind load image-archive`, and a Helm values file that names
# them ($APPSTACK_CACHE/current/values.yaml, read by e2e/demo.sh). Without kind it
# prints where the archives are and what to do with them.
#
#   e2e/images/load-current.sh [NAME...]     (default: operator shop)
#
# APPSTACK_OPERATOR_IMAGE / APPSTACK_SHOP_IMAGE (repository:tag) name images you
# built and pushed yourself: those are neither built nor loaded. APPSTACK_KIND_CLUSTER
# names the kind cluster (default: from a current context named kind-NAME).
# Building the archives needs root (the images carry files owned by other users);
# as another user it runs e2e/images/build.sh through `sudo -n`, or says how;
# APPSTACK_ARCHIVES_READY=1 then loads the newest cached archives without building.
set -euo pipefail

IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$IMAGES_DIR/../.." && pwd)
APPSTACK_CACHE=${APPSTACK_CACHE:-$HOME/.cache/appstack}
IMAGE_CACHE=$APPSTACK_CACHE/images
OUT=$APPSTACK_CACHE/current
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$REPO_ROOT/$TARGET_DIR

log() { printf '  [images] %s\n' "$*" >&2; }
die() {
  printf '  [images] ERROR: %s\n' "$*" >&2
  exit 1
}

# The reference each image is known by (the recipe's IMAGE_REF), or the user's.
ref_of() {
  case $1 in
    operator) echo "${APPSTACK_OPERATOR_IMAGE:-appstack.local/appstack-operator:dev}" ;;
    shop) echo "${APPSTACK_SHOP_IMAGE:-appstack.local/appstack-shop:dev}" ;;
    *) sed -n 's/^IMAGE_REF=//p' "$IMAGES_DIR/$1/recipe.sh" | head -n 1 ;;
  esac
}
given() { # NAME: true when the user named their own image for it
  case $1 in
    operator) [[ -n ${APPSTACK_OPERATOR_IMAGE:-} ]] ;;
    shop) [[ -n ${APPSTACK_SHOP_IMAGE:-} ]] ;;
    *) return 1 ;;
  esac
}

# The kind cluster behind the current context, if any: prints its name.
kind_cluster() {
  local ctx
  command -v kind >/dev/null || return 1
  if [[ -n ${APPSTACK_KIND_CLUSTER:-} ]]; then
    echo "$APPSTACK_KIND_CLUSTER"
    return 0
  fi
  ctx=$(kubectl config current-context 2>/dev/null) || return 1
  [[ $ctx == kind-* ]] || return 1
  kind get clusters 2>/dev/null | grep -qx "${ctx#kind-}" || return 1
  echo "${ctx#kind-}"
}

build_archives() {
  mkdir -p "$IMAGE_CACHE" "$OUT" # as this user, before a root build could create them
  local cmd=(env "APPSTACK_CACHE=$APPSTACK_CACHE" "CARGO_TARGET_DIR=$TARGET_DIR" "$IMAGES_DIR/build.sh" --no-import "$@")
  if [[ ${APPSTACK_ARCHIVES_READY:-} == 1 ]]; then
    log "APPSTACK_ARCHIVES_READY=1: loading the newest cached archives of $*"
  elif ((EUID == 0)); then
    "${cmd[@]}"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    log "building the archives as root (sudo): ${*}"
    sudo -n "${cmd[@]}"
  else
    die "building the image archives needs root. Run:
    sudo ${cmd[*]}
  then run this again with APPSTACK_ARCHIVES_READY=1, or build and push your own images and set
  APPSTACK_OPERATOR_IMAGE / APPSTACK_SHOP_IMAGE (repository:tag)."
  fi
}

# The newest cached archive of NAME (a 16-hex key, as build.sh names them).
archive_of() {
  local a
  # shellcheck disable=SC2012 # names are ours: NAME-<hex>.oci.tar
  a=$(ls -t "$IMAGE_CACHE/$1-"????????????????.oci.tar 2>/dev/null | head -n 1)
  [[ -n $a ]] || die "no archive of $1 in $IMAGE_CACHE after the build"
  echo "$a"
}

main() {
  local names=("$@") build=() n cluster="" archives=() ref repo tag
  ((${#names[@]})) || names=(operator shop)
  ref=$(ref_of operator)
  repo=${ref%:*}
  tag=${ref##*:}
  [[ $repo != "$ref" && $tag != */* ]] || die "APPSTACK_OPERATOR_IMAGE=$ref: expected repository:tag"
  for n in "${names[@]}"; do
    [[ -f $IMAGES_DIR/$n/recipe.sh ]] || die "unknown image $n (see e2e/images/README.md)"
    if given "$n"; then log "$n: using $(ref_of "$n") as given (not built, not loaded)"; else build+=("$n"); fi
  done

  if ((${#build[@]})); then
    build_archives "${build[@]}"
    cluster=$(kind_cluster) || cluster=""
    for n in "${build[@]}"; do
      archives+=("$(archive_of "$n")")
    done
    if [[ -n $cluster ]]; then
      local i
      for i in "${!build[@]}"; do
        log "${build[$i]}: kind load image-archive $(basename "${archives[$i]}") --name $cluster ($(ref_of "${build[$i]}"))"
        kind load image-archive "${archives[$i]}" --name "$cluster" >&2 \
          || die "kind load image-archive ${archives[$i]} failed"
      done
    else
      log "the current context is not a kind cluster (or kind is not on PATH): load these archives into"
      log "every node's containerd yourself, e.g. ctr -n k8s.io images import ARCHIVE, or push them to a"
      log "registry and set APPSTACK_OPERATOR_IMAGE / APPSTACK_SHOP_IMAGE:"
      for n in "${!build[@]}"; do log "  $(ref_of "${build[$n]}")  ${archives[$n]}"; done
      die "images not loaded"
    fi
  fi

  # The chart's values for the operator image (e2e/demo.sh passes them to helm).
  # A loaded image with a tag other than latest is never pulled (IfNotPresent).
  mkdir -p "$OUT"
  printf '# Written by e2e/images/load-current.sh for CLUSTER=current.\nimage:\n  repository: %s\n  tag: "%s"\n  pullPolicy: IfNotPresent\n' \
    "$repo" "$tag" >"$OUT/values.yaml"
  log "helm values for the operator image: $OUT/values.yaml ($ref)"
}

main "$@"
