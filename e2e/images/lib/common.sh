# shellcheck shell=bash
# Shared helpers of e2e/images/build.sh: logging, hashing, apt prerequisites.
# Sourced, not run.

IMAGES_DIR=${IMAGES_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
APPSTACK_CACHE=${APPSTACK_CACHE:-$HOME/.cache/appstack}
IMAGE_CACHE="$APPSTACK_CACHE/images"
# shellcheck disable=SC2034 # read by build.sh and the recipes
IMAGE_WORK="$IMAGE_CACHE/work"

log() { printf '  [images] %s\n' "$*" >&2; }
# Errors are reported once, by die or by the ERR trap, whichever sees them first
# (a failure inside $(...) or a recipe's subshell surfaces at every level).
# $$ is the top-level script's pid in every subshell; build.sh removes the mark on exit.
ERROR_MARK="${TMPDIR:-/tmp}/appstack-images-error.$$"
_reported() { [[ -e $ERROR_MARK ]] || { touch "$ERROR_MARK" && return 1; }; }
die() {
  _reported || printf '  [images] ERROR: %s\n' "$*" >&2
  exit 1
}
on_err() { # ERR trap: a command failed without die explaining it
  local rc=$1 where=$2 cmd=$3
  _reported || printf '  [images] ERROR: %s failed (exit %s) at %s\n' "$cmd" "$rc" "$where" >&2
}

# Human-readable size of a file or directory.
size_of() { du -sh --apparent-size "$1" 2>/dev/null | cut -f1; }

sha256_of_stdin() { sha256sum | cut -d' ' -f1; }

# Hash of files (content and names, relative to IMAGES_DIR), in a stable order.
hash_files() {
  local f
  for f in "$@"; do
    printf '%s %s\n' "${f#"$IMAGES_DIR"/}" "$(sha256sum <"$f" | cut -d' ' -f1)"
  done | sort
}

_apt_updated=0
apt_update_once() {
  ((_apt_updated)) && return 0
  log "apt-get update (package lists are missing or stale)"
  apt-get update -qq >/dev/null || die "apt-get update failed: check the Debian mirror in /etc/apt/sources.list.d"
  _apt_updated=1
}

# Installs the Debian packages that are not installed yet; no-op when all are.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local t0=$SECONDS
  log "installing prerequisites: ${missing[*]}"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
  log "installed ${missing[*]} in $((SECONDS - t0))s"
}

# The Debian release an image is built from (a recipe may set another, e.g.
# trixie for the newer store majors); the host's own release is read from its
# os-release.
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
HOST_SUITE=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")

# Packages whose versions key the images; looked up together (apt-cache takes
# most of a warm run otherwise).
APT_KEY_PACKAGES=(libc6 base-files libssl3 libssl3t64 redis-server redis-tools valkey-server valkey-redis-compat
  postgresql-15 postgresql-17 postgresql-common busybox-static)

# apt-cache with the package lists of DEBIAN_SUITE: the host's own for its
# release; otherwise private lists under the cache (lib/debian.sh), so the host
# never gets another release's sources.
suite_apt_cache() {
  if [[ $DEBIAN_SUITE == "$HOST_SUITE" ]]; then
    apt-cache "$@"
  else
    private_apt_update_once
    apt-cache "${PRIVATE_APT_OPTS[@]}" "$@"
  fi
}

# "package version" lines for the named packages, from one apt-cache call.
_apt_candidates() {
  suite_apt_cache policy "$@" 2>/dev/null | awk '/^[^ ].*:$/ {p = substr($0, 1, length($0) - 1)} /Candidate:/ {print p, $2}'
}

# Version apt would install for a package from DEBIAN_SUITE (same mirror as the
# images use); part of each image's cache key. Memoised per suite for one build.sh run.
apt_candidate() {
  local memo="$IMAGE_WORK/apt-candidates.$DEBIAN_SUITE" v=""
  [[ -f $memo ]] && v=$(awk -v p="$1" '$1 == p {print $2; exit}' "$memo")
  if [[ -z $v ]]; then
    mkdir -p "$IMAGE_WORK"
    _apt_candidates "${APT_KEY_PACKAGES[@]}" "$1" >"$memo"
    v=$(awk -v p="$1" '$1 == p {print $2; exit}' "$memo")
  fi
  if [[ (-z $v || $v == "(none)") && $DEBIAN_SUITE == "$HOST_SUITE" ]]; then
    apt_update_once
    _apt_candidates "${APT_KEY_PACKAGES[@]}" "$1" >"$memo"
    v=$(awk -v p="$1" '$1 == p {print $2; exit}' "$memo")
  fi
  [[ -n $v && $v != "(none)" ]] || die "apt knows no package $1 in $DEBIAN_SUITE: check /etc/apt/sources.list.d (or APPSTACK_DEBIAN_MIRROR)"
  printf '%s\n' "$v"
}

# Seconds since a start mark, for progress lines.
since() { echo "$((SECONDS - $1))s"; }
