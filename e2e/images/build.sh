#!/usr/bin/env bash
# Builds the container images of the local cluster and the tests without any
# registry (Debian packages, static binaries built here, the host-built Rust
# binaries), caches each as an OCI archive keyed by a hash of its inputs, and
# imports it into the cluster's containerd (k8s.io namespace).
#
#   e2e/images/build.sh [--no-import] NAME... | all
#   names: pause tools redis postgres redis8 valkey8 postgres17 operator
#          operator-previous shop traefik postgres-exporter redis-exporter
#
# Env: APPSTACK_CACHE (cache root), CONTAINERD_ADDRESS (default: the cluster's
# socket), CARGO_TARGET_DIR (where the release binaries are), APPSTACK_DEBIAN_MIRROR.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
# Failures inside $(...) must stop the build too (recipes compute paths and keys that way).
shopt -s inherit_errexit
set -E
trap 'on_err $? "${BASH_SOURCE[0]#"$IMAGES_DIR/"}:$LINENO" "$BASH_COMMAND"' ERR
trap 'rm -f "$ERROR_MARK"' EXIT

IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # read by lib/rustbin.sh
REPO_ROOT=$(cd "$IMAGES_DIR/../.." && pwd)
# shellcheck source=lib/common.sh
source "$IMAGES_DIR/lib/common.sh"
# shellcheck source=lib/oci.sh
source "$IMAGES_DIR/lib/oci.sh"
# shellcheck source=lib/debian.sh
source "$IMAGES_DIR/lib/debian.sh"

ALL_IMAGES=(pause tools redis postgres redis8 valkey8 postgres17 postgres-exporter redis-exporter operator operator-previous shop)
CONTAINERD_ADDRESS=${CONTAINERD_ADDRESS:-/run/appstack/containerd/containerd.sock}

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

do_import=1
names=()
for arg in "$@"; do
  case $arg in
    --no-import) do_import=0 ;;
    -h | --help) usage ;;
    all) names+=("${ALL_IMAGES[@]}") ;;
    pause | tools | redis | postgres | redis8 | valkey8 | postgres17 | postgres-exporter | redis-exporter | operator | operator-previous | shop | traefik) names+=("$arg") ;;
    *) printf 'unknown image %q\n' "$arg" >&2; usage 2 ;;
  esac
done
((${#names[@]})) || usage 2

((EUID == 0)) || die "run as root: debootstrap, chroot and the cluster's containerd need it"
if ((do_import)); then
  command -v ctr >/dev/null || ensure_packages containerd
  [[ -S $CONTAINERD_ADDRESS ]] \
    || die "no containerd at $CONTAINERD_ADDRESS: start the cluster (e2e/cluster.sh up), set CONTAINERD_ADDRESS, or pass --no-import"
fi

mkdir -p "$IMAGE_CACHE" "$IMAGE_WORK"
# One build at a time per cache: the base rootfs and the work dirs are shared.
exec 9>"$IMAGE_CACHE/.lock"
if ! flock -n 9; then
  log "waiting for another e2e/images/build.sh to finish"
  flock 9
fi

cleanup() {
  local m
  # Never delete through a mount that a failed chroot step left behind.
  awk -v p="$IMAGE_CACHE/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
  rm -rf --one-file-system "$IMAGE_WORK"
  rm -f "$ERROR_MARK"
}
trap cleanup EXIT

# build_image NAME: cached archive or a fresh build, then the import. In a subshell
# because each recipe defines the same functions.
build_image() (
  local name=$1 t0=$SECONDS inputs key archive root files
  local RECIPE_SHARES=() # directories of another recipe this one builds with
  # shellcheck source=/dev/null
  source "$IMAGES_DIR/$name/recipe.sh"
  mapfile -t files < <(find "$IMAGES_DIR/$name" "${RECIPE_SHARES[@]/#/$IMAGES_DIR/}" -type f | sort -u)
  # shellcheck disable=SC2046 # a list of package names
  ensure_packages $(recipe_prereqs)
  inputs=$(recipe_key_inputs)
  key=$({
    hash_files "$IMAGES_DIR/lib/common.sh" "$IMAGES_DIR/lib/oci.sh" "${files[@]}"
    printf '%s\n' "ref=$IMAGE_REF" "$inputs"
  } | sha256_of_stdin | cut -c1-16)
  archive="$IMAGE_CACHE/$name-$key.oci.tar"

  if [[ -f $archive && -f $archive.digest ]]; then
    log "$name: cached archive $(basename "$archive") ($(size_of "$archive"))"
  else
    log "$name: building $IMAGE_REF (key $key)"
    root="$IMAGE_WORK/$name/rootfs"
    rm -rf --one-file-system "${IMAGE_WORK:?}/$name"
    mkdir -p "$IMAGE_WORK/$name"
    recipe_build "$root"
    local rootfs_size
    rootfs_size=$(size_of "$root")
    oci_pack "$root" "$(recipe_config)" "$IMAGE_REF" "$key" "$archive"
    rm -rf --one-file-system "${IMAGE_WORK:?}/$name"
    local old
    # Archives of older inputs (a 16-hex key, so redis- never matches redis8-).
    for old in "$IMAGE_CACHE/$name-"????????????????.oci.tar; do
      [[ $old == "$archive" ]] || rm -f "$old" "$old.digest"
    done
    log "$name: built in $(since "$t0"): rootfs $rootfs_size, archive $(size_of "$archive")"
  fi

  if ((do_import)); then
    oci_import "$archive" "$IMAGE_REF"
  fi
  log "$name: $IMAGE_REF $(cut -c1-19 "$archive.digest") ready ($(since "$t0"))"
)

t_all=$SECONDS
for name in "${names[@]}"; do
  build_image "$name"
done
log "images done: ${names[*]} ($(since "$t_all"))"
