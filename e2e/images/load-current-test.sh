#!/usr/bin/env bash
# Tests load-current.sh's decisions without kind, a cluster or root: a copy of it
# runs beside a fake build.sh (writes empty archives), a fake kind (records its
# calls) and a fake kubectl (prints a chosen context).
#
#   e2e/images/load-current-test.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/repo/e2e/images"/{operator,shop} "$T/bin"
cp "$HERE/load-current.sh" "$T/repo/e2e/images/"
touch "$T/repo/e2e/images"/{operator,shop}/recipe.sh
cat >"$T/repo/e2e/images/build.sh" <<'EOF'
#!/usr/bin/env bash
shift # --no-import
mkdir -p "$APPSTACK_CACHE/images"
for n in "$@"; do : >"$APPSTACK_CACHE/images/$n-0123456789abcdef.oci.tar"; echo "build $n" >>"$CALLS"; done
EOF
cat >"$T/bin/kind" <<'EOF'
#!/usr/bin/env bash
case $1 in
  get) printf 'other\ndemo\n' ;;
  load) [[ $2 == image-archive && -f $3 && $4 == --name ]] || exit 3; echo "kind load $(basename "$3") $5" >>"$CALLS" ;;
esac
EOF
cat >"$T/bin/kubectl" <<'EOF'
#!/usr/bin/env bash
[[ "$*" == "config current-context" ]] && echo "$FAKE_CONTEXT"
EOF
chmod +x "$T/bin"/* "$T/repo/e2e/images"/*.sh

failed=0
# values_name WHAT PATTERN...: the values file holds every pattern.
values_name() {
  local what=$1 p
  shift
  for p in "$@"; do
    grep -q "$p" "$T/cache/current/values.yaml" || { echo "FAILED  values.yaml $what: no '$p'"; failed=1; return; }
  done
  echo "ok      values.yaml names $what"
}
# check NAME WANT_RC WANT_CALLS [ENV=VALUE...]: runs the script with the fakes.
check() {
  local name=$1 want_rc=$2 want=$3 rc=0 got
  shift 3
  export CALLS=$T/calls
  : >"$CALLS"
  rm -rf "$T/cache"
  env PATH="$T/bin:$PATH" APPSTACK_CACHE="$T/cache" FAKE_CONTEXT=kind-demo "$@" \
    "$T/repo/e2e/images/load-current.sh" >"$T/out" 2>&1 || rc=$?
  got=$(paste -sd ';' "$CALLS")
  if [[ $rc == "$want_rc" && $got == "$want" ]]; then
    echo "ok      $name"
  else
    echo "FAILED  $name: exit $rc (want $want_rc), calls '$got' (want '$want')"
    sed 's/^/        /' "$T/out"
    failed=1
  fi
}

check "kind context: both archives built and loaded" 0 \
  "build operator;build shop;kind load operator-0123456789abcdef.oci.tar demo;kind load shop-0123456789abcdef.oci.tar demo"
values_name "the loaded operator image" 'repository: appstack.local/appstack-operator' 'pullPolicy: IfNotPresent'
check "APPSTACK_KIND_CLUSTER wins over the context" 0 \
  "build operator;build shop;kind load operator-0123456789abcdef.oci.tar other;kind load shop-0123456789abcdef.oci.tar other" \
  FAKE_CONTEXT=gke_x APPSTACK_KIND_CLUSTER=other
check "not a kind context: built, not loaded, fails with what to do" 1 "build operator;build shop" FAKE_CONTEXT=gke_x
check "a kind-* context kind does not know: not loaded" 1 "build operator;build shop" FAKE_CONTEXT=kind-gone
check "images given: nothing built or loaded" 0 "" \
  APPSTACK_OPERATOR_IMAGE=registry.example/op:1.2 APPSTACK_SHOP_IMAGE=registry.example/shop:3
values_name "the given operator image" 'repository: registry.example/op' 'tag: "1.2"'
check "an operator image without a tag is refused before any build" 1 "" APPSTACK_OPERATOR_IMAGE=registry.example/op
exit "$failed"
