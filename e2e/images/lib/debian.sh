# shellcheck shell=bash
# Debian root filesystems for the images: one shared minbase rootfs per mirror and
# package state (debootstrap), copied per image, packages added with apt in a chroot.
# DEBIAN_SUITE (lib/common.sh) names the release; a recipe may set it.
# Sourced, not run.

# The mirror the host's apt uses (APPSTACK_DEBIAN_MIRROR overrides); the security
# archive likewise. The host's lists then tell which versions an image will get.
_host_uris() {
  {
    grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{for (i = 2; i <= NF; i++) print $i}'
    grep -hsE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print ($2 ~ /^\[/) ? $3 : $2}'
  } | awk '!seen[$0]++'
}
debian_mirror() {
  [[ -n ${APPSTACK_DEBIAN_MIRROR:-} ]] && { echo "$APPSTACK_DEBIAN_MIRROR"; return; }
  local m
  m=$(_host_uris | grep -E '/debian/?$' || true)
  echo "${m%%$'\n'*}" | grep . || echo "http://deb.debian.org/debian"
}
debian_security_mirror() {
  [[ -n ${APPSTACK_DEBIAN_SECURITY_MIRROR:-} ]] && { echo "$APPSTACK_DEBIAN_SECURITY_MIRROR"; return; }
  local m
  m=$(_host_uris | grep -E '/debian-security/?$' || true)
  echo "${m%%$'\n'*}" | grep . || echo "http://deb.debian.org/debian-security"
}

# Package lists of a release the host does not run (e.g. trixie on a bookworm
# host), kept under the cache and read through these options only: the host's
# sources, lists and pins stay as they are.
PRIVATE_APT_OPTS=()
_private_apt_dir() { echo "$APPSTACK_CACHE/apt/$DEBIAN_SUITE"; }
private_apt_update_once() {
  local dir
  dir=$(_private_apt_dir)
  PRIVATE_APT_OPTS=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::Etc::Preferences=/nonexistent" -o Dir::Etc::PreferencesParts=/nonexistent
    -o "Dir::State::Lists=$dir/lists" -o "Dir::State::status=$dir/status" -o "Dir::Cache=$dir/cache"
    -o APT::Sandbox::User=root)
  # Fresh for a day: a point release or a security update then rekeys the images.
  [[ -n $(find "$dir/.updated" -mmin -1440 2>/dev/null) ]] && return 0
  ensure_packages debian-archive-keyring
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  : >"$dir/status"
  {
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) $DEBIAN_SUITE $DEBIAN_SUITE-updates main"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_security_mirror) $DEBIAN_SUITE-security main"
  } >"$dir/sources.list"
  log "apt-get update of the private $DEBIAN_SUITE lists ($dir; the host's apt is untouched)"
  apt-get -qq "${PRIVATE_APT_OPTS[@]}" update >/dev/null \
    || die "apt-get update of $DEBIAN_SUITE from $(debian_mirror) failed: check the mirror (APPSTACK_DEBIAN_MIRROR)"
  touch "$dir/.updated"
}

# Runs a command inside ROOT with a clean environment (proxies passed through).
in_chroot() {
  local root=$1; shift
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} "$@"
}

# apt-get inside ROOT; --force-confold keeps config files an image set up beforehand.
# Output goes to ROOT's build log, shown only when apt fails.
chroot_apt() {
  local root=$1 log="$1.apt.log"; shift
  if ! in_chroot "$root" apt-get -q -y -o Dpkg::Options::=--force-confold -o Dpkg::Use-Pty=0 "$@" >>"$log" 2>&1; then
    tail -n 25 "$log" >&2
    die "apt-get $* failed in $root (full log: $log)"
  fi
}

chroot_mount() { # proc for maintainer scripts, the host's resolver for apt
  mountpoint -q "$1/proc" || mount -t proc proc "$1/proc"
  cp -L /etc/resolv.conf "$1/etc/resolv.conf"
}
chroot_umount() {
  if mountpoint -q "$1/proc" 2>/dev/null; then umount "$1/proc" || umount -l "$1/proc"; fi
}

# The shared base: key, path, and build.
debian_base_key() {
  local libc basefiles ssl ssl_pkg=libssl3
  # trixie's OpenSSL is libssl3t64 (the 64-bit time_t transition).
  [[ $DEBIAN_SUITE == bookworm ]] || ssl_pkg=libssl3t64
  libc=$(apt_candidate libc6)
  basefiles=$(apt_candidate base-files)
  ssl=$(apt_candidate "$ssl_pkg")
  {
    echo "suite=$DEBIAN_SUITE mirror=$(debian_mirror) security=$(debian_security_mirror)"
    echo "libc6=$libc base-files=$basefiles $ssl_pkg=$ssl"
    hash_files "$IMAGES_DIR/lib/debian.sh"
  } | sha256_of_stdin | cut -c1-16
}

debian_base() { # prints the directory of the cached base rootfs, building it if needed
  local key dir tmp t0=$SECONDS
  key=$(debian_base_key)
  dir="$IMAGE_CACHE/base/$DEBIAN_SUITE-$key"
  if [[ -f $dir/.complete ]]; then echo "$dir"; return 0; fi
  ensure_packages debootstrap debian-archive-keyring
  tmp="$dir.tmp"
  chroot_umount "$tmp"
  rm -rf --one-file-system "$tmp"
  mkdir -p "$tmp"
  log "debootstrap --variant=minbase $DEBIAN_SUITE from $(debian_mirror) (shared base, cached)"
  debootstrap --variant=minbase --components=main "$DEBIAN_SUITE" "$tmp" "$(debian_mirror)" >"$tmp.log" 2>&1 \
    || die "debootstrap failed (log: $tmp.log): check the mirror and network"
  _debian_base_setup "$tmp"
  local old
  for old in "$IMAGE_CACHE/base/$DEBIAN_SUITE-"*; do # bases of older keys
    [[ $old == "$tmp"* ]] || rm -rf --one-file-system "$old"
  done
  mv "$tmp" "$dir"
  rm -f "$tmp.log"
  touch "$dir/.complete"
  log "base rootfs $DEBIAN_SUITE-$key ready in $(since "$t0") ($(size_of "$dir"))"
  echo "$dir"
}

_debian_base_setup() {
  local r=$1
  cat >"$r/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $(debian_mirror)
Suites: $DEBIAN_SUITE $DEBIAN_SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $(debian_security_mirror)
Suites: $DEBIAN_SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  rm -f "$r/etc/apt/sources.list"
  # Packages added later skip docs, man pages and translations.
  cat >"$r/etc/dpkg/dpkg.cfg.d/01-appstack-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$r/etc/apt/apt.conf.d/01-appstack-norecommends"
  # No daemon may start inside the build chroot.
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 0755 "$r/usr/sbin/policy-rc.d"
  chroot_mount "$r"
  chroot_apt "$r" update
  chroot_apt "$r" upgrade
  chroot_apt "$r" clean
  chroot_umount "$r"
  debian_trim "$r"
  rm -f "$r.apt.log"
}

# debian_rootfs DEST: a fresh copy of the base, mounted for chroot_apt.
debian_rootfs() {
  local base dest=$1
  base=$(debian_base)
  rm -rf --one-file-system "$dest"
  cp -a "$base" "$dest"
  rm -f "$dest/.complete"
  chroot_mount "$dest"
  # Fresh lists: the mirror drops superseded versions, so the base's may be stale.
  chroot_apt "$dest" update
}

debian_trim() {
  local r=$1
  # Packages that register man pages as alternatives (postgresql) need them at
  # install time, so those go here rather than through the dpkg excludes.
  rm -rf "$r"/usr/share/man "$r"/usr/share/postgresql/*/man "$r"/usr/share/info "$r"/usr/share/lintian "$r"/usr/share/linda \
    "$r"/usr/share/locale "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
    "$r"/var/lib/apt/lists/* "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old \
    "$r"/var/log/apt/* "$r"/var/log/*.log "$r"/var/log/bootstrap.log
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  find "$r/usr" "$r/var" -name '__pycache__' -type d -prune -exec rm -rf {} + 2>/dev/null || true
}

# debian_finalize ROOT: unmount and strip what only the build needed.
debian_finalize() {
  local r=$1
  chroot_apt "$r" clean
  chroot_umount "$r"
  debian_trim "$r"
  rm -f "$r/usr/sbin/policy-rc.d" "$r/etc/resolv.conf" "$r/etc/machine-id" "$r/etc/hostname" \
    "$r"/etc/ssl/private/ssl-cert-snakeoil.key "$r"/etc/ssl/certs/ssl-cert-snakeoil.pem
  # runc mounts its own /dev, /proc, /sys; the build's device nodes are not wanted.
  rm -rf "${r:?}"/dev/* "${r:?}"/tmp/* "${r:?}"/var/tmp/*
  chmod 1777 "$r/tmp" "$r/var/tmp"
}
