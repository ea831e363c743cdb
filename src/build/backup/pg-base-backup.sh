#!/bin/sh
# A base backup of PostgreSQL into the backup volume, then retention. A
# backup is written under <label>.partial and becomes <label> only once
# pg_verifybackup has checked every file against the manifest's SHA-256;
# restores take only <label> directories. The result (JSON) or the reason of
# a failure is the container's termination message, which the operator reads
# (the summary's one reader is the Rust type BackupSummary). From the
# environment: APPSTACK_BACKUP_DIR, PG*, RETAIN_COUNT and RETAIN_MAX_AGE.
set -u
# shellcheck source=src/build/scripts/lib.sh
. "${0%/*}/lib"
root=${APPSTACK_BACKUP_DIR:?set by the operator in the pod; a pod made before these scripts lacks it and the next one has it}
mkdir -p "$root/base" "$root/wal" || fail "cannot write to the backup volume at $root"
# What a killed backup left is never used; it is removed before the next.
rm -rf "$root"/base/*.partial
label=$(date -u +%Y%m%dT%H%M%SZ)
dir="$root/base/$label"
echo "base backup $label of $PGHOST as $PGUSER"
# A new pod may wait a moment for the network policy to admit it.
retry 30 2 pg_isready -q -t 5 || fail "PostgreSQL at $PGHOST does not answer: $(pg_isready -t 5 2>&1)"
pg_basebackup -D "$dir.partial" -Fp -X stream -c fast --manifest-checksums=SHA256 \
  -l "appstack $label" 2> "$scratch/err" || fail "pg_basebackup failed: $(tail -n 3 "$scratch/err")"
pg_verifybackup -q "$dir.partial" 2> "$scratch/err" || fail "the backup does not verify: $(tail -n 3 "$scratch/err")"
# A server restored once keeps that restore's recovery target in
# postgresql.auto.conf until its credentials container removes it; a base
# backup taken before then would stop every later restore at the old target.
held=$(grep -E "^[[:space:]]*(restore_command|recovery_target[a-z_]*)[[:space:]]*=" "$dir.partial/postgresql.auto.conf" 2>/dev/null | head -n 3 | tr '\n' ' ')
if [ -n "$held" ]; then
  rm -rf "$dir.partial"
  fail "refused: the server's postgresql.auto.conf still holds an earlier restore's recovery settings ($held), so this backup could not be restored past that point. The store's credentials container removes them once the server has promoted: check its log (kubectl logs ${PGHOST%%.*} -c credentials), or restart the store pod, then take the backup again"
fi
end=$(date -u +%s)
echo "$end" > "$dir.end"
sync "$dir.end"
{ mv "$dir.partial" "$dir" && sync "$root/base"; } || fail "could not rename $dir.partial"
size=$(du -sb "$dir" | cut -f1)
echo "verified: $size bytes"

# Retention: the newest RETAIN_COUNT, less those older than RETAIN_MAX_AGE
# seconds, never the newest; then the WAL no kept backup needs.
now=$(date -u +%s)
kept=0
oldest=
for l in $(labels "$root/base"); do
  age=$((now - $(label_epoch "$l")))
  if [ "$kept" -eq 0 ] || { [ "$kept" -lt "$RETAIN_COUNT" ] && { [ -z "${RETAIN_MAX_AGE:-}" ] || [ "$age" -le "$RETAIN_MAX_AGE" ]; }; }; then
    kept=$((kept + 1))
    oldest=$l
  else
    echo "retention: removing backup $l"
    rm -rf "${root:?}/base/$l" "$root/base/$l.end"
  fi
done
for f in "$root"/base/*.end; do
  [ -e "$f" ] && [ ! -d "${f%.end}" ] && rm -f "$f"
done
first=$(sed -n 's/^START WAL LOCATION: .* (file \([0-9A-F]*\))$/\1/p' "$root/base/$oldest/backup_label")
if [ -n "$first" ]; then
  pg_archivecleanup -x .gz "$root/wal" "$first"
  pg_archivecleanup -x .gz.sha256 "$root/wal" "$first"
fi
total=$(du -sb "$root" | cut -f1)
# WAL names are hex: ls sorts them by time safely.
# shellcheck disable=SC2012
newest_wal=$(ls -1t "$root"/wal/*.gz 2>/dev/null | head -n 1)
last=$end
[ -n "$newest_wal" ] && [ "$(date -u -r "$newest_wal" +%s)" -gt "$last" ] && last=$(date -u -r "$newest_wal" +%s)
summary "$root/.summary.json" "$label" "$end" "$size" "$kept" "$total" "$(cat "$root/base/$oldest.end")" "$last"
