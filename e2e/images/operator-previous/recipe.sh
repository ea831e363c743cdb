# shellcheck shell=bash disable=SC2034 # IMAGE_REF is read by build.sh
# appstack.local/appstack-operator:previous: the operator of the previous release,
# for the e2e scenario that upgrades a stack it made. Built on this host from the
# repository's own history (git archive of PREVIOUS_RELEASE, cargo build --release
# --locked), cached under $APPSTACK_CACHE/previous-release/<commit>.
IMAGE_REF=appstack.local/appstack-operator:previous
# The last release before least-privilege credentials, NetworkPolicies and TLS:
# its stacks have the apps on the stores' superuser and default user, in plain text.
PREVIOUS_RELEASE=2075e3db2f3af21f1a2fd6b13f0a9c7aae447e31
# shellcheck source-path=SCRIPTDIR source=../lib/rustbin.sh
source "$IMAGES_DIR/lib/rustbin.sh"

recipe_prereqs() { echo ca-certificates; }

# The previous release's binary, built once per commit and toolchain.
_previous_bin() {
  local dir src target bin
  dir="$APPSTACK_CACHE/previous-release/$PREVIOUS_RELEASE"
  src="$dir/src"
  target="$dir/target-$(rustc --version | tr -cd 'a-zA-Z0-9.-')"
  bin="$target/release/appstack-operator"
  if [[ ! -x $bin ]]; then
    git -C "$REPO_ROOT" cat-file -e "$PREVIOUS_RELEASE^{commit}" 2>/dev/null \
      || die "commit $PREVIOUS_RELEASE (the previous release) is not in this clone: git fetch --unshallow"
    rm -rf "$src" && mkdir -p "$src"
    git -C "$REPO_ROOT" archive "$PREVIOUS_RELEASE" | tar -x -C "$src"
    log "building the previous release's operator ($PREVIOUS_RELEASE); once per toolchain, ~5 min"
    CARGO_TARGET_DIR=$target cargo build --release --locked --quiet \
      --manifest-path "$src/Cargo.toml" -p appstack >&2 \
      || die "cargo build of the previous release failed"
  fi
  echo "$bin"
}

recipe_key_inputs() {
  local bin
  bin=$(_previous_bin)
  echo "release=$PREVIOUS_RELEASE"
  rustbin_key_inputs "$bin"
}
recipe_build() {
  local bin
  bin=$(_previous_bin)
  rustbin_rootfs "$bin" "$1" appstack-operator
}
recipe_config() { rustbin_config appstack-operator run; }
