# shellcheck shell=bash disable=SC2034 # read by build.sh and redis/recipe.sh
# appstack.local/redis:8: Debian trixie's redis-server 8, built by redis/recipe.sh
# with the same entrypoint and contract.
REDIS_MAJOR=8
DEBIAN_SUITE=trixie
RECIPE_SHARES=(redis)
# The shared recipe, found through IMAGES_DIR.
# shellcheck source=/dev/null
source "$IMAGES_DIR/redis/recipe.sh"
