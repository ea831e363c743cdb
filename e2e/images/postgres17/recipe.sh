# shellcheck shell=bash disable=SC2034 # read by build.sh and postgres/recipe.sh
# appstack.local/postgres:17: Debian trixie's PostgreSQL 17 (the operator's default
# major), built by postgres/recipe.sh with the same entrypoint and contract.
PG_MAJOR=17
DEBIAN_SUITE=trixie
RECIPE_SHARES=(postgres)
# The shared recipe, found through IMAGES_DIR.
# shellcheck source=/dev/null
source "$IMAGES_DIR/postgres/recipe.sh"
