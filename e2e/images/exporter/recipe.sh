# shellcheck shell=bash disable=SC2034 # IMAGE_REF is read by build.sh
# The stores' Prometheus exporters under the names the operator defaults to
# (src/build/stores/*.rs, EXPORTER_IMAGE): Debian trixie's package of the same
# upstream version, with the exporter as the entrypoint as upstream's image has
# it. postgres-exporter/ and redis-exporter/ set EXPORTER_PACKAGE and IMAGE_REF,
# then use this recipe.
DEBIAN_SUITE=trixie

recipe_prereqs() { echo debootstrap debian-archive-keyring; }

# The package's upstream version must be the image tag's: a trixie update to
# another upstream release must not go out under the old name.
_exporter_version() {
  local v
  v=$(apt_candidate "$EXPORTER_PACKAGE")
  v=${v#*:}
  echo "${v%%-*}"
}

recipe_key_inputs() {
  local base v
  base=$(debian_base_key)
  v=$(apt_candidate "$EXPORTER_PACKAGE")
  echo "suite=$DEBIAN_SUITE base=$base $EXPORTER_PACKAGE=$v"
}

recipe_build() {
  local r=$1 v
  v=$(_exporter_version)
  [[ ${IMAGE_REF##*:} == "v$v" ]] || die "$EXPORTER_PACKAGE is $v in $DEBIAN_SUITE but the image is $IMAGE_REF: change the operator's default image and this recipe together"
  debian_rootfs "$r"
  chroot_apt "$r" install --no-install-recommends "$EXPORTER_PACKAGE"
  [[ -x $r/usr/bin/$EXPORTER_PACKAGE ]] || die "$EXPORTER_PACKAGE has no /usr/bin/$EXPORTER_PACKAGE"
  debian_finalize "$r"
}

recipe_config() {
  cat <<JSON
{"Entrypoint":["/usr/bin/$EXPORTER_PACKAGE"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"User":"65534:65534","WorkingDir":"/","ExposedPorts":{"$EXPORTER_PORT/tcp":{}}}
JSON
}
