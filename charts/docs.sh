#!/usr/bin/env bash
# The chart README's values table, generated from the comments in values.yaml
# by helm-docs (pinned, built from its Go module into the tools cache):
#   charts/docs.sh          rewrite charts/appstack-operator/README.md from README.md.gotmpl
#   charts/docs.sh --check  fail when README.md differs from what would be written
# Edit the prose in README.md.gotmpl and a value's description in values.yaml
# (`# --` above the key), never the table in README.md.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

docs="$(tool_bin_dir helm-docs)/helm-docs"
[[ -x "$docs" ]] || build_tools helm-docs
args=(--chart-search-root "$CHARTS_DIR" --chart-to-generate "$CHART"
  --sort-values-order file --log-level error --dry-run)

# helm-docs skips a chart it cannot read and still exits 0: render to a file
# and refuse an empty one.
want=$(mktemp)
trap 'rm -f "$want"' EXIT
"$docs" "${args[@]}" >"$want"
[[ -s "$want" ]] || { echo "helm-docs rendered nothing for $CHART" >&2; exit 1; }

if [[ "${1:-}" == "--check" ]]; then
  if ! diff -u "$CHART/README.md" "$want" >&2; then
    echo "charts/appstack-operator/README.md is not what values.yaml and README.md.gotmpl give: run charts/docs.sh and commit" >&2
    exit 1
  fi
  echo "chart README values table matches values.yaml"
else
  cp "$want" "$CHART/README.md"
  echo "wrote $CHART/README.md"
fi
