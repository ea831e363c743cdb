# shellcheck shell=bash disable=SC2034 # IMAGE_REF is read by build.sh
# appstack.local/tools:1: Debian's static busybox and its applet links (sh, nslookup,
# wget, nc, sleep, dd, cat, ...), for test pods. No entrypoint: pods give the command.
IMAGE_REF=appstack.local/tools:1

recipe_prereqs() { :; }

recipe_key_inputs() {
  local v
  v=$(apt_candidate busybox-static)
  echo "busybox-static=$v"
}

recipe_build() {
  local r=$1 dl="$IMAGE_WORK/tools/deb" applet v
  v=$(apt_candidate busybox-static)
  mkdir -p "$dl" "$r"/{bin,etc,root,tmp}
  # The sandbox user cannot write to a root-only work dir; the package is signed anyway.
  (cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root "busybox-static=$v") \
    || die "apt-get download busybox-static failed"
  dpkg-deb -x "$dl"/busybox-static_*.deb "$dl/x"
  install -m 0755 "$dl/x/bin/busybox" "$r/bin/busybox"
  for applet in $("$r/bin/busybox" --list-full); do
    [[ $applet == bin/busybox ]] && continue
    mkdir -p "$r/$(dirname "$applet")"
    ln -sf /bin/busybox "$r/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
  chmod 0700 "$r/root"
  chmod 1777 "$r/tmp"
}

recipe_config() {
  cat <<'JSON'
{"Cmd":["sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"}
JSON
}
