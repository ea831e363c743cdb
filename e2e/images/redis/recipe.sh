# shellcheck shell=bash disable=SC2034 # IMAGE_REF is read by build.sh
# appstack.local/redis:7: Debian's redis-server and redis-cli behind an entrypoint
# with the official image's contract (args go to redis-server, /data, uid 999).
IMAGE_REF=appstack.local/redis:7

recipe_prereqs() { echo debootstrap debian-archive-keyring; }

recipe_key_inputs() {
  local base v
  base=$(debian_base_key)
  v=$(apt_candidate redis-server)
  echo "base=$base redis-server=$v"
}

recipe_build() {
  local r=$1
  debian_rootfs "$r"
  # Created before the package, whose postinst then reuses them: uid/gid 999 as in
  # the official image, so volumes and securityContexts carry over.
  in_chroot "$r" groupadd --system --gid 999 redis
  in_chroot "$r" useradd --system --uid 999 --gid 999 --home-dir /var/lib/redis --no-create-home \
    --shell /usr/sbin/nologin redis
  chroot_apt "$r" install redis-server redis-tools
  install -d -o 999 -g 999 -m 0755 "$r/data"
  install -m 0755 "$IMAGES_DIR/redis/docker-entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
  debian_finalize "$r"
}

recipe_config() {
  cat <<'JSON'
{"Entrypoint":["/usr/local/bin/docker-entrypoint.sh"],"Cmd":["redis-server"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","LANG=C.UTF-8"],"WorkingDir":"/data","ExposedPorts":{"6379/tcp":{}},"Volumes":{"/data":{}}}
JSON
}
