# shellcheck shell=bash disable=SC2034 # IMAGE_REF is read by build.sh
# appstack.local/appstack-shop:dev: the demo app, target/release/appstack-shop built
# on this host by `cargo build --release -p appstack-shop`, in a minimal image.
IMAGE_REF=appstack.local/appstack-shop:dev
# shellcheck source-path=SCRIPTDIR source=../lib/rustbin.sh
source "$IMAGES_DIR/lib/rustbin.sh"

recipe_prereqs() { echo ca-certificates; }
recipe_key_inputs() {
  local bin
  bin=$(rustbin_path appstack-shop appstack-shop)
  rustbin_key_inputs "$bin"
}
recipe_build() {
  local bin
  bin=$(rustbin_path appstack-shop appstack-shop)
  rustbin_rootfs "$bin" "$1" appstack-shop
}
recipe_config() { rustbin_config appstack-shop; }
