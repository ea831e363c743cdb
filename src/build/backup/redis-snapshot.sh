#!/bin/sh
# An RDB snapshot of Redis into the backup volume, then retention. The
# snapshot is written as <label>.rdb.partial and becomes <label>.rdb only
# once redis-check-rdb has read it whole and its SHA-256 is written beside
# it; restores take only <label>.rdb files whose checksum matches. The
# result (JSON, read by the Rust type BackupSummary) or the reason of a
# failure is the termination message. From the environment:
# APPSTACK_BACKUP_DIR, REDIS_*, REDISCLI_AUTH, RETAIN_COUNT, RETAIN_MAX_AGE.
set -u
# shellcheck source=src/build/scripts/lib.sh
. "${0%/*}/lib"
root=${APPSTACK_BACKUP_DIR:?set by the operator in the pod; a pod made before these scripts lacks it and the next one has it}
mkdir -p "$root" || fail "cannot write to the backup volume at $root"
rm -f "$root"/*.partial
label=$(date -u +%Y%m%dT%H%M%SZ)
file="$root/$label.rdb"
echo "RDB snapshot $label of $REDIS_HOST as $REDIS_USER"
cli() { redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert "$REDIS_TLS_CA_FILE"} -h "$REDIS_HOST" -p "$REDIS_PORT" --user "$REDIS_USER" --no-auth-warning "$@"; }
# A new pod may wait a moment for the network policy to admit it. The
# backup user may not even PING: a refusal is an answer.
answers() { cli ping 2>&1 | grep -qE 'PONG|NOPERM'; }
retry 30 2 answers || fail "Redis at $REDIS_HOST does not answer: $(cli ping 2>&1 | head -n 1)"
cli --rdb "$file.partial" > "$scratch/out" 2>&1 \
  || fail "redis-cli --rdb failed: $(tail -n 3 "$scratch/out")"
redis-check-rdb "$file.partial" > "$scratch/out" 2>&1 || fail "the snapshot does not check: $(grep -v '^\[offset' "$scratch/out" | tail -n 3)"
sha256sum "$file.partial" | cut -d' ' -f1 > "$file.sha256"
sync "$file.partial" "$file.sha256"
{ mv "$file.partial" "$file" && sync "$root"; } || fail "could not rename $file.partial"
size=$(stat -c %s "$file")
echo "checked: $size bytes"

now=$(date -u +%s)
kept=0
oldest=
for l in $(labels "$root" .rdb); do
  age=$((now - $(label_epoch "$l")))
  if [ "$kept" -eq 0 ] || { [ "$kept" -lt "$RETAIN_COUNT" ] && { [ -z "${RETAIN_MAX_AGE:-}" ] || [ "$age" -le "$RETAIN_MAX_AGE" ]; }; }; then
    kept=$((kept + 1))
    oldest=$l
  else
    echo "retention: removing snapshot $l"
    rm -f "$root/$l.rdb" "$root/$l.rdb.sha256"
  fi
done
total=$(du -sb "$root" | cut -f1)
summary "$root/.summary.json" "$label" "$now" "$size" "$kept" "$total" "$(label_epoch "$oldest")" "$(label_epoch "$label")"
