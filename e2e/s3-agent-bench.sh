#!/usr/bin/env bash
# The backup agent against the local cluster's S3 server (versitygw), from the
# host: how long `backup-sync` takes to send a PostgreSQL backup volume and
# `backup-fetch` to bring it back (what a restore from S3 waits for), and the
# peak RSS of the WAL copy with 100,000 objects under its prefix.
#
#   e2e/s3-agent-bench.sh [BINARY...]     (default: the release build)
#
# Each binary is measured on the same data, so an older build (e.g. main's)
# gives the figures before a change. The volume is the newest base backup an
# e2e run left in the S3 server (the demo's data: about 1,300 files, 47 MB),
# then the same plus 1 GiB in two relation files (random, as PostgreSQL's
# are to a compressor). Everything goes to the bucket `agent-bench`, under a
# prefix per run, and is removed afterwards; about 3.5 GB of disk while it
# runs. Takes about 4 minutes for two binaries on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER_DIR=${APPSTACK_CLUSTER_DIR:-/var/lib/appstack-cluster}
S3_DIR=$CLUSTER_DIR/s3
[[ -r $S3_DIR/credentials ]] || { echo "no S3 server: e2e/cluster.sh up first" >&2; exit 1; }
ip=$(cat "$CLUSTER_DIR/run/node-ip" 2>/dev/null || true)
[[ -n $ip ]] || ip=$(ip -4 route get 1.1.1.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p')
AWS_ACCESS_KEY_ID=$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' "$S3_DIR/credentials")
AWS_SECRET_ACCESS_KEY=$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' "$S3_DIR/credentials")
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export S3_ENDPOINT=http://$ip:9000 S3_BUCKET=agent-bench S3_REGION=us-east-1
bucket_dir=$S3_DIR/data/$S3_BUCKET

binaries=("$@")
[[ ${#binaries[@]} -gt 0 ]] ||
  binaries=("${CARGO_TARGET_DIR:-target}/release/appstack-operator")

work=$(mktemp -d /tmp/agent-bench.XXXXXX)
cleanup() { rm -rf "$work" "$bucket_dir" "$S3_DIR/meta/$S3_BUCKET"; }
trap cleanup EXIT

curl -fsS --aws-sigv4 "aws:amz:$S3_REGION:s3" \
  --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
  -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PUT "$S3_ENDPOINT/$S3_BUCKET" >/dev/null 2>&1 ||
  true # already there

# The demo's volume: the oldest base backup a backup-to-s3-and-restore run
# left in the server (not one a running scenario may be deleting), or
# BENCH_SOURCE (a store's directory in the server, holding base/ and wal/).
end=$(find "$S3_DIR/data" -path '*/e2e-backup-to-s3-and-restore-*/postgres/base/*.end' \
  -printf '%T@ %p\n' 2>/dev/null | sort -n | head -1 | cut -d' ' -f2-)
store=${BENCH_SOURCE:-${end%/base/*}}
[[ -d $store/base ]] || { echo "no PostgreSQL base backup in the S3 server: run backup-to-s3-and-restore once" >&2; exit 1; }
mkdir -p "$work/demo" "$work/big"
cp -r "$store/base" "$work/demo/"
[[ -d $store/wal ]] && cp -r "$store/wal" "$work/demo/"
cp -r "$work/demo/." "$work/big/"
db=$(find "$work/big/base" -mindepth 3 -maxdepth 3 -type d -path '*/base/*/base/*' | sort | tail -1)
head -c $((900 * 1024 * 1024)) /dev/urandom >"$db/990001"
head -c $((124 * 1024 * 1024)) /dev/urandom >"$db/990002"

# The WAL copy's bucket: 100,000 objects written straight into versitygw's
# directory (it lists what its directory holds), and a volume whose last
# three segments are there and two are new.
wal=$bucket_dir/rss/shop/postgres/wal
mkdir -p "$wal" "$work/vol/wal"
python3 - "$wal" <<'EOF'
import os, sys
for n in range(1, 50001):
    name = os.path.join(sys.argv[1], "00000001%016X.gz" % n)
    open(name, "w").write("segment %d" % n)
    open(name + ".sha256", "w").write("sum")
EOF
for n in 49998 49999 50000 50001 50002; do
  f=$(printf '00000001%016X.gz' "$n")
  printf 'segment %d' "$n" >"$work/vol/wal/$f"
  printf sum >"$work/vol/wal/$f.sha256"
done

sums() { (cd "$1" && find base -type f -exec sha256sum {} + | sort); }
seconds() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>&1 || { tail -3 "$work/out" >&2; exit 1; }
  cut -d' ' -f1 "$work/time"
}

printf '%-40s %10s %10s %10s %10s %12s\n' binary "demo up" "demo down" "1G up" "1G down" "WAL RSS MiB"
for bin in "${binaries[@]}"; do
  row=()
  for data in demo big; do
    prefix=run-$data/shop/postgres/
    rm -rf "${bucket_dir:?}/run-$data" "$S3_DIR/meta/$S3_BUCKET/run-$data" "$work/fetch" "$work/data"
    mkdir -p "$work/data"
    row+=("$(S3_PREFIX=$prefix seconds "$bin" backup-sync --store postgres --root "$work/$data")")
    sync
    row+=("$(S3_PREFIX=$prefix seconds "$bin" backup-fetch --store postgres --into "$work/fetch" --data "$work/data")")
    if [[ $(sums "$work/$data") != "$(sums "$work/fetch")" ]]; then
      echo "$bin: the fetched $data backup differs from the volume" >&2
      exit 1
    fi
  done
  rm -rf "$work/fetch" "$wal"/00000001000000000000C35[12].gz*
  S3_PREFIX=rss/shop/postgres/ /usr/bin/time -f '%e %M' -o "$work/time" \
    timeout -s INT 20 "$bin" backup-sync --store postgres --root "$work/vol" --only wal/ --every 5 \
    >/dev/null 2>&1 || true
  rss=$(tail -1 "$work/time" | awk '{printf "%.1f", $2 / 1024}')
  printf '%-40s %10s %10s %10s %10s %12s\n' "$(basename "$(dirname "$bin")")/$(basename "$bin")" "${row[@]}" "$rss"
done
