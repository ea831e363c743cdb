# shellcheck shell=bash disable=SC2034 # IMAGE_REF is read by build.sh
# appstack.local/appstack-operator:dev: target/release/appstack-operator, built on
# this host by `cargo build --release -p appstack`, in a minimal image (no shell).
IMAGE_REF=appstack.local/appstack-operator:dev
# shellcheck source-path=SCRIPTDIR source=../lib/rustbin.sh
source "$IMAGES_DIR/lib/rustbin.sh"

recipe_prereqs() { echo ca-certificates; }
recipe_key_inputs() {
  local bin
  bin=$(rustbin_path appstack-operator appstack)
  rustbin_key_inputs "$bin"
}
recipe_build() {
  local bin
  bin=$(rustbin_path appstack-operator appstack)
  rustbin_rootfs "$bin" "$1" appstack-operator
}
recipe_config() { rustbin_config appstack-operator run; }
