# shellcheck shell=bash disable=SC2034 # IMAGE_REF is read by build.sh
# appstack.local/postgres:15: Debian's PostgreSQL 15 behind an entrypoint with the
# official image's contract (see docker-entrypoint.sh). postgres17/recipe.sh sets
# PG_MAJOR and DEBIAN_SUITE, then uses this recipe.
PG_MAJOR=${PG_MAJOR:-15}
IMAGE_REF=appstack.local/postgres:$PG_MAJOR

recipe_prereqs() { echo debootstrap debian-archive-keyring; }

recipe_key_inputs() {
  local base v common
  base=$(debian_base_key)
  v=$(apt_candidate "postgresql-$PG_MAJOR")
  common=$(apt_candidate postgresql-common)
  echo "suite=$DEBIAN_SUITE base=$base postgresql-$PG_MAJOR=$v postgresql-common=$common"
}

recipe_build() {
  local r=$1 lib
  debian_rootfs "$r"
  # uid/gid 999 as in the official image; the package's postinst reuses the user.
  in_chroot "$r" groupadd --system --gid 999 postgres
  in_chroot "$r" useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres
  install -d -o 999 -g 999 -m 0755 "$r/var/lib/postgresql"
  chroot_apt "$r" install postgresql-common
  # The entrypoint owns initialisation: no Debian "main" cluster in the image.
  sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
    "$r/etc/postgresql-common/createcluster.conf"
  chroot_apt "$r" install "postgresql-$PG_MAJOR"
  [[ ! -e $r/etc/postgresql/$PG_MAJOR/main ]] || die "the package created a cluster despite create_main_cluster = false"
  # initdb copies the sample: every new database listens on all addresses.
  sed -ri "s/^#?listen_addresses[[:space:]]*=[[:space:]]*'[^']*'/listen_addresses = '*'/" \
    "$r/usr/share/postgresql/$PG_MAJOR/postgresql.conf.sample"
  grep -q "^listen_addresses = '\*'" "$r/usr/share/postgresql/$PG_MAJOR/postgresql.conf.sample" \
    || die "could not set listen_addresses in postgresql.conf.sample"
  _drop_jit "$r"
  install -d -o 999 -g 999 -m 3777 "$r/run/postgresql"
  install -d -o 999 -g 999 -m 1777 "$r/var/lib/postgresql/data"
  install -d -m 0755 "$r/docker-entrypoint-initdb.d"
  install -m 0755 "$IMAGES_DIR/postgres/docker-entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
  debian_finalize "$r"
}

# The LLVM JIT provider (and the LLVM and Z3 it pulls in) is a third of the image;
# without the provider the server runs with JIT off and says nothing.
_drop_jit() {
  local r=$1 lib soname missing
  rm -rf "$r/usr/lib/postgresql/$PG_MAJOR/lib/llvmjit"* "$r/usr/lib/postgresql/$PG_MAJOR/lib/bitcode"
  # bookworm names it libLLVM-14.so.1, trixie libLLVM.so.19.1.
  for lib in "$r"/usr/lib/*-linux-gnu/libLLVM*.so* "$r"/usr/lib/*-linux-gnu/libz3.so*; do
    [[ -f $lib && ! -L $lib ]] || continue
    soname=$(basename "$lib")
    # Keep it if any other file still names it (a dependent binary).
    if grep -rlqF --exclude="$soname" "${soname%%.so*}.so" "$r/usr/lib" "$r/usr/bin" "$r/usr/sbin"; then
      continue
    fi
    rm -f "$(dirname "$lib")/${soname%%.so*}".so*
  done
  # shellcheck disable=SC2016 # expanded by the chroot's shell
  missing=$(in_chroot "$r" sh -c 'for f in /usr/lib/postgresql/*/bin/* /usr/lib/postgresql/*/lib/*.so; do ldd "$f" 2>/dev/null; done' | grep 'not found' || true)
  [[ -z $missing ]] || die "postgres binaries miss libraries after trimming: $missing"
}

recipe_config() {
  cat <<JSON
{"Entrypoint":["/usr/local/bin/docker-entrypoint.sh"],"Cmd":["postgres"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/lib/postgresql/$PG_MAJOR/bin:/usr/sbin:/usr/bin:/sbin:/bin","LANG=C.UTF-8","PG_MAJOR=$PG_MAJOR","PGDATA=/var/lib/postgresql/data"],"WorkingDir":"/","StopSignal":"SIGINT","ExposedPorts":{"5432/tcp":{}},"Volumes":{"/var/lib/postgresql/data":{}}}
JSON
}
