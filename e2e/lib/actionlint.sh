#!/usr/bin/env bash
# actionlint (pinned, built from its Go module into the tools cache) over
# .github/workflows; it runs shellcheck on each `run:` script too.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tools.sh
source e2e/lib/tools.sh
lint="$(tool_bin_dir actionlint)/actionlint"
[[ -x "$lint" ]] || build_tools actionlint
"$lint" -no-color -oneline
echo "actionlint: $(find .github/workflows -name '*.y*ml' | wc -l) workflow(s) clean"
