# shellcheck shell=bash
# Wraps a host-built (glibc, dynamically linked) Rust binary in a minimal image:
# the binary, exactly the shared libraries ldd lists plus the loader, passwd/group
# with the nonroot user 65532, nsswitch.conf and the CA bundle. Sourced, not run.

RUST_TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $RUST_TARGET_DIR == /* ]] || RUST_TARGET_DIR="$REPO_ROOT/$RUST_TARGET_DIR"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

# rustbin_path BINARY CARGO_PACKAGE: the release binary, or a clear error.
rustbin_path() {
  local bin="$RUST_TARGET_DIR/release/$1"
  [[ -x $bin ]] || die "$bin is missing: run: cargo build --release -p $2"
  echo "$bin"
}

# Absolute paths of the libraries and loader the binary needs on this host.
rustbin_libs() {
  local out
  out=$(ldd "$1" 2>&1) || die "ldd $1 failed: $out"
  if grep -q 'not found' <<<"$out"; then die "$1 needs libraries this host lacks: $out"; fi
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out" | sort -u
}

rustbin_key_inputs() {
  local bin=$1 lib libs
  libs=$(rustbin_libs "$bin")
  hash_files "$IMAGES_DIR/lib/rustbin.sh"
  echo "bin=$(sha256sum <"$bin" | cut -d' ' -f1)"
  for lib in $libs; do echo "$lib=$(sha256sum <"$lib" | cut -d' ' -f1)"; done
  echo "ca=$(sha256sum <"$CA_BUNDLE" | cut -d' ' -f1)"
}

# rustbin_rootfs BINARY ROOT NAME: ROOT gets /NAME and what it needs to run.
rustbin_rootfs() {
  local bin=$1 r=$2 name=$3 lib libs
  libs=$(rustbin_libs "$bin")
  mkdir -p "$r"/{etc/ssl/certs,tmp,home/nonroot}
  install -m 0755 "$bin" "$r/$name"
  for lib in $libs; do
    # Same path as on the host (the loader's search path and PT_INTERP expect it).
    install -D -m 0755 "$(readlink -f "$lib")" "$r$lib"
  done
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$r/etc/group"
  printf 'hosts: files dns\nnetworks: files\n' >"$r/etc/nsswitch.conf"
  install -m 0644 "$CA_BUNDLE" "$r/etc/ssl/certs/ca-certificates.crt"
  chown 65532:65532 "$r/home/nonroot"
  chmod 1777 "$r/tmp"
}

# rustbin_config NAME [CMD...]: runs as 65532, entrypoint /NAME.
rustbin_config() {
  local name=$1 cmd="" a
  shift
  for a in "$@"; do cmd+="${cmd:+,}\"$a\""; done
  printf '{"User":"65532:65532","Entrypoint":["/%s"],"Cmd":[%s],"Env":["PATH=/","SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],"WorkingDir":"/home/nonroot","ExposedPorts":{"8080/tcp":{}}}\n' \
    "$name" "$cmd"
}
