# shellcheck shell=bash disable=SC2034 # read by build.sh and exporter/recipe.sh
# docker.io/oliver006/redis_exporter (the operator's default names it
# oliver006/redis_exporter): Debian trixie's prometheus-redis-exporter, built
# by exporter/recipe.sh.
EXPORTER_PACKAGE=prometheus-redis-exporter
EXPORTER_PORT=9121
IMAGE_REF=docker.io/oliver006/redis_exporter:v1.69.0
RECIPE_SHARES=(exporter)
# shellcheck source=/dev/null
source "$IMAGES_DIR/exporter/recipe.sh"
