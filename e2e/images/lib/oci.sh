# shellcheck shell=bash
# Writes a one-layer OCI image archive from a root filesystem, and imports it into
# containerd. Writing the layout directly (tar layer + config + manifest + index)
# needs no image builder state and no privileges beyond reading the rootfs.
# Sourced, not run.

_json_file_digest() { sha256sum "$1" | cut -d' ' -f1; }

# Moves a file into the layout's blob store; prints its digest and size.
_oci_blob() {
  local layout=$1 file=$2 d
  d=$(_json_file_digest "$file")
  mv "$file" "$layout/blobs/sha256/$d"
  printf '%s %s\n' "$d" "$(stat -c %s "$layout/blobs/sha256/$d")"
}

# oci_pack ROOTFS CONFIG_JSON REF KEY OUT
# CONFIG_JSON is the image's "config" object (User, Entrypoint, Cmd, Env, ...).
# Writes OUT (an OCI archive whose manifest is named REF) and OUT.digest.
oci_pack() {
  local root=$1 config=$2 ref=$3 key=$4 out=$5
  local layout="$out.layout" arch created diff_id layer_digest layer_size cfg cfg_size man man_size
  rm -rf "$layout"
  mkdir -p "$layout/blobs/sha256"
  arch=$(dpkg --print-architecture)
  created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  # Numeric owners: the image's uids are those of its own /etc/passwd, not the host's.
  tar -C "$root" --numeric-owner --sort=name -cf "$layout/layer.tar" .
  diff_id=$(_json_file_digest "$layout/layer.tar")
  gzip -n -6 "$layout/layer.tar"
  read -r layer_digest layer_size < <(_oci_blob "$layout" "$layout/layer.tar.gz")

  printf '{"architecture":"%s","os":"linux","created":"%s","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"e2e/images/build.sh (%s)"}]}' \
    "$arch" "$created" "$config" "$diff_id" "$created" "$ref" >"$layout/config.json"
  read -r cfg cfg_size < <(_oci_blob "$layout" "$layout/config.json")

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}],"annotations":{"dev.appstack.image.key":"%s"}}' \
    "$cfg" "$cfg_size" "$layer_digest" "$layer_size" "$key" >"$layout/manifest.json"
  read -r man man_size < <(_oci_blob "$layout" "$layout/manifest.json")

  # io.containerd.image.name carries the full reference (ctr import names the image
  # with it); ref.name is the OCI-standard tag for other tools.
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$man" "$man_size" "$arch" "$ref" "${ref##*:}" >"$layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

  tar -C "$layout" -cf "$out.tmp" oci-layout index.json blobs
  rm -rf "$layout"
  mv "$out.tmp" "$out"
  printf 'sha256:%s\n' "$man" >"$out.digest"
}

ctr_k8s() { ctr --address "$CONTAINERD_ADDRESS" -n k8s.io "$@"; }

# Digest containerd holds for REF, empty when it has none.
ctr_digest() { ctr_k8s images ls "name==$1" 2>/dev/null | awk 'NR == 2 {print $3}'; }

# oci_import ARCHIVE REF: imports unless containerd already has that exact manifest.
oci_import() {
  local archive=$1 ref=$2 want have t0=$SECONDS
  want=$(<"$archive.digest")
  have=$(ctr_digest "$ref")
  if [[ $have == "$want" ]]; then
    log "$ref: containerd already has ${want:7:12}, import skipped"
    return 0
  fi
  ctr_k8s images import "$archive" >/dev/null || die "ctr images import $archive failed (containerd at $CONTAINERD_ADDRESS)"
  have=$(ctr_digest "$ref")
  [[ $have == "$want" ]] || die "$ref: imported but containerd reports '${have:-nothing}', expected $want"
  log "$ref: imported ${want:7:12} in $(since "$t0")"
}
