# shellcheck shell=bash disable=SC2034 # read by build.sh and exporter/recipe.sh
# quay.io/prometheuscommunity/postgres-exporter: Debian trixie's
# prometheus-postgres-exporter, built by exporter/recipe.sh.
EXPORTER_PACKAGE=prometheus-postgres-exporter
EXPORTER_PORT=9187
IMAGE_REF=quay.io/prometheuscommunity/postgres-exporter:v0.17.1
RECIPE_SHARES=(exporter)
# shellcheck source=/dev/null
source "$IMAGES_DIR/exporter/recipe.sh"
