# shellcheck shell=bash disable=SC2034 # IMAGE_REF is read by build.sh
# appstack.local/redis:7: Debian's redis-server and redis-cli behind an entrypoint
# with the official image's contract (args go to the server, /data, uid 999).
# redis8/ and valkey8/ set REDIS_MAJOR, REDIS_FLAVOUR and DEBIAN_SUITE, then use
# this recipe.
REDIS_MAJOR=${REDIS_MAJOR:-7}
# redis, or valkey (a Redis-compatible server under the BSD licence).
REDIS_FLAVOUR=${REDIS_FLAVOUR:-redis}
IMAGE_REF=appstack.local/$REDIS_FLAVOUR:$REDIS_MAJOR

recipe_prereqs() { echo debootstrap debian-archive-keyring; }

recipe_key_inputs() {
  local base v
  base=$(debian_base_key)
  v=$(apt_candidate "$REDIS_FLAVOUR-server")
  echo "suite=$DEBIAN_SUITE base=$base $REDIS_FLAVOUR-server=$v"
}

recipe_build() {
  local r=$1 tool
  debian_rootfs "$r"
  # Created before the package, whose postinst then reuses them: uid/gid 999 as in
  # the official image, so volumes and securityContexts carry over.
  in_chroot "$r" groupadd --system --gid 999 "$REDIS_FLAVOUR"
  in_chroot "$r" useradd --system --uid 999 --gid 999 --home-dir "/var/lib/$REDIS_FLAVOUR" --no-create-home \
    --shell /usr/sbin/nologin "$REDIS_FLAVOUR"
  chroot_apt "$r" install "$REDIS_FLAVOUR-server" "$REDIS_FLAVOUR-tools"
  if [[ $REDIS_FLAVOUR == valkey ]]; then
    # The operator's scripts and probes call redis-cli and redis-server (and read
    # REDISCLI_AUTH, which valkey-cli honours too); Debian has no
    # valkey-redis-compat package, so the image links the Redis names itself.
    for tool in server cli check-aof check-rdb benchmark; do
      [[ -e $r/usr/bin/valkey-$tool && ! -e $r/usr/bin/redis-$tool ]] && ln -s "valkey-$tool" "$r/usr/bin/redis-$tool"
    done
    [[ -x $r/usr/bin/redis-server && -x $r/usr/bin/redis-cli ]] || die "valkey: redis-server/redis-cli links missing"
  fi
  install -d -o 999 -g 999 -m 0755 "$r/data"
  install -m 0755 "$IMAGES_DIR/redis/docker-entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
  debian_finalize "$r"
}

recipe_config() {
  cat <<JSON
{"Entrypoint":["/usr/local/bin/docker-entrypoint.sh"],"Cmd":["$REDIS_FLAVOUR-server"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","LANG=C.UTF-8"],"WorkingDir":"/data","ExposedPorts":{"6379/tcp":{}},"Volumes":{"/data":{}}}
JSON
}
