# shellcheck shell=bash disable=SC2034 # IMAGE_REF is read by build.sh
# appstack.local/traefik: the ingress controller of the routes scenario, the
# static binary e2e/lib/tools.sh builds (not part of `all`: built lazily by
# e2e/ingress.sh).
# shellcheck source-path=SCRIPTDIR source=../../lib/tools.sh
source "$REPO_ROOT/e2e/lib/tools.sh"
IMAGE_REF=appstack.local/traefik:$TRAEFIK_VERSION

recipe_prereqs() { :; }

recipe_key_inputs() {
  echo "traefik=$TRAEFIK_VERSION"
  sha256sum "$(tool_bin_dir traefik)/traefik" | cut -d' ' -f1
}

recipe_build() {
  local r=$1
  mkdir -p "$r/tmp"
  chmod 1777 "$r/tmp"
  cp "$(tool_bin_dir traefik)/traefik" "$r/traefik"
}

recipe_config() {
  cat <<'JSON'
{"User":"65532:65532","Entrypoint":["/traefik"],"Env":["PATH=/"],"WorkingDir":"/"}
JSON
}
