# shellcheck shell=bash disable=SC2034 # IMAGE_REF is read by build.sh
# appstack.local/pause:3.10: the sandbox image, one static binary on scratch.
IMAGE_REF=appstack.local/pause:3.10

recipe_prereqs() { echo gcc libc6-dev; }

recipe_key_inputs() { dpkg-query -W -f='${Package}=${Version}\n' gcc libc6-dev; }

recipe_build() {
  local r=$1
  mkdir -p "$r"
  gcc -static -Os -s -Wall -Wextra -Werror -o "$r/pause" "$IMAGES_DIR/pause/pause.c"
}

# 65535 like the upstream pause image: the sandbox needs no privileges.
recipe_config() {
  cat <<'JSON'
{"User":"65535:65535","Entrypoint":["/pause"],"Env":["PATH=/"],"WorkingDir":"/"}
JSON
}
