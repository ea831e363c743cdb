# shellcheck shell=bash disable=SC2034 # read by build.sh and redis/recipe.sh
# appstack.local/valkey:8: Debian trixie's valkey-server 8 (BSD-licensed, speaks
# the Redis protocol), built by redis/recipe.sh with the redis image's entrypoint
# and contract, plus redis-server/redis-cli names for the operator's scripts.
REDIS_MAJOR=8
REDIS_FLAVOUR=valkey
DEBIAN_SUITE=trixie
RECIPE_SHARES=(redis)
# The shared recipe, found through IMAGES_DIR.
# shellcheck source=/dev/null
source "$IMAGES_DIR/redis/recipe.sh"
