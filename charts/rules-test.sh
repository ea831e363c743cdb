#!/usr/bin/env bash
# The chart's PrometheusRule as it ships: rendered with helm (all values at
# their defaults but prometheusRule.enabled), checked with `promtool check
# rules` and tested with `promtool test rules` against
# charts/appstack-operator/tests/rules-test.yaml (alerts that fire and that
# do not). promtool: $PROMTOOL, else on PATH, else Debian's prometheus
# package unpacked once into $APPSTACK_CACHE/tools (no service installed).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_promtool() {
  if [[ -n ${PROMTOOL:-} ]]; then return 0; fi
  if PROMTOOL=$(command -v promtool); then return 0; fi
  local version dir
  version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')
  [[ -n $version && $version != "(none)" ]] || { apt-get update -qq && version=$(apt-cache policy prometheus | awk '/Candidate:/ {print $2}'); }
  [[ -n $version && $version != "(none)" ]] || { echo "no Debian package prometheus to take promtool from: set PROMTOOL" >&2; exit 1; }
  dir="$TOOLS_DIR/promtool-${version//[^A-Za-z0-9.+-]/_}"
  PROMTOOL="$dir/usr/bin/promtool"
  [[ -x $PROMTOOL ]] && return 0
  echo "unpacking promtool from Debian's prometheus $version into $dir (once)" >&2
  local tmp
  tmp=$(mktemp -d)
  # The sandbox user cannot write to a root-only temp dir; the package is signed anyway.
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "prometheus=$version") \
    || { rm -rf "$tmp"; echo "apt-get download prometheus=$version failed" >&2; exit 1; }
  mkdir -p "$dir.tmp"
  dpkg-deb -x "$tmp"/prometheus_*.deb "$dir.tmp"
  rm -rf "$tmp" "$dir"
  mv "$dir.tmp" "$dir"
}

find_helm
find_promtool
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$HELM" template appstack-operator "$CHART" --namespace appstack-system --kube-version "$KUBE_VERSION" \
  --set metrics.prometheusRule.enabled=true --show-only templates/prometheusrule.yaml > "$work/rendered.yaml"
# promtool reads a rules file: the PrometheusRule's spec.
sed -n '/^spec:/,$p' "$work/rendered.yaml" | tail -n +2 | sed 's/^  //' > "$work/rules.yaml"
grep -q 'alert: ' "$work/rules.yaml" || { echo "no alert rendered" >&2; exit 1; }
cp "$CHART/tests/rules-test.yaml" "$work/"
"$PROMTOOL" check rules "$work/rules.yaml"
"$PROMTOOL" test rules "$work/rules-test.yaml"
# The dashboard's queries parse as PromQL too: each one as a recording
# rule of a throwaway file, which promtool checks.
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq; }
jq -r '[.. | objects | select(has("expr")) | .expr] | to_entries
  | {groups: [{name: "dashboard", rules: [.[] | {record: "dashboard:query\(.key)", expr: .value}]}]}' \
  "$CHART/dashboards/appstack-stores.json" > "$work/dashboard-rules.json"
"$PROMTOOL" check rules "$work/dashboard-rules.json"
