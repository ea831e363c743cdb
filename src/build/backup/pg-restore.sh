#!/bin/sh
# The restore init container of a new stack's PostgreSQL: only into an empty
# data directory, from the newest base backup that ended before the target
# and still verifies (a damaged one is skipped, a half-written one never
# seen). The copy is made beside PGDATA and renamed into place when whole,
# with the recovery settings: PostgreSQL then replays the archived WAL up
# to the target (or its end) and promotes. From the environment:
# APPSTACK_RESTORE_DIR, PGDATA and RESTORE_FROM, RESTORE_VOLUME,
# RESTORE_TARGET.
set -u
# shellcheck source=src/build/scripts/lib.sh
. "${0%/*}/lib"
src=${APPSTACK_RESTORE_DIR:?set by the operator in the pod; a pod made before these scripts lacks it and the next one has it}
if [ -e "$PGDATA/recovery.signal" ]; then
  finish "a restore is under way: PostgreSQL replays the archived WAL"
elif [ -s "$PGDATA/PG_VERSION" ]; then
  finish "$PGDATA holds a database: nothing restored"
fi
stage="$PGDATA.restoring"
rm -rf "$stage"
target=
if [ -n "${RESTORE_TARGET:-}" ]; then
  target=$(date -u -d "$RESTORE_TARGET" +%s) || fail "spec.restore.pointInTime: $RESTORE_TARGET is no time this image's date understands"
  # PostgreSQL takes no zone abbreviation (such as Z) here: a UTC offset.
  target_time=$(date -u -d "$RESTORE_TARGET" '+%Y-%m-%d %H:%M:%S.%N+00')
fi
[ -d "$src/base" ] || fail "no PostgreSQL backup in volume $RESTORE_VOLUME of stack $RESTORE_FROM: take one first (kubectl create job --from=cronjob/$RESTORE_FROM-postgres-backup <name>)"
chosen=
skipped=
for l in $(labels "$src/base"); do
  end=$(cat "$src/base/$l.end" 2>/dev/null) || continue
  if [ -n "$target" ] && [ "$end" -gt "$target" ]; then
    continue
  fi
  if pg_verifybackup -q "$src/base/$l" 2> "$scratch/err"; then
    chosen=$l
    break
  fi
  echo "backup $l does not verify, trying an older one: $(tail -n 2 "$scratch/err")" >&2
  skipped="$skipped $l"
done
[ -n "$chosen" ] || fail "no verified PostgreSQL base backup of stack $RESTORE_FROM ended before ${RESTORE_TARGET:-now} in volume $RESTORE_VOLUME"
echo "restoring base backup $chosen of stack $RESTORE_FROM${RESTORE_TARGET:+, then its WAL up to $RESTORE_TARGET}"
{ mkdir -m 700 "$stage" && cp -a "$src/base/$chosen/." "$stage/"; } || fail "could not copy backup $chosen into the data volume"
rm -f "$stage/backup_manifest"
# A copy that went through object storage may lack empty directories the
# server needs (a bucket keeps none).
for d in pg_commit_ts pg_dynshmem pg_logical/mappings pg_logical/snapshots pg_multixact/members \
  pg_multixact/offsets pg_notify pg_replslot pg_serial pg_snapshots pg_stat pg_stat_tmp pg_subtrans \
  pg_tblspc pg_twophase pg_wal/archive_status pg_xact; do
  mkdir -p "$stage/$d"
done
chmod 700 "$stage"
# What the backup brings besides data is not trusted: a bucket or volume may
# hold settings that run commands (archive_command, ssl_passphrase_command),
# load libraries, open the server (pg_hba.conf), or an earlier restore's
# recovery target. The server's configuration is written anew: of the
# backup's postgresql.conf only the settings initdb makes, with plain values;
# then this restore's own recovery settings, and nothing else.
links=$(find "$stage" -type l | head -n 3)
[ -z "$links" ] || fail "backup $chosen of stack $RESTORE_FROM holds symbolic links ($links): tablespaces and links are not restored; nothing was changed"
rm -f "$stage/tablespace_map" "$stage/standby.signal" "$stage/recovery.signal" "$stage/postmaster.pid" "$stage/postmaster.opts"
keys='max_connections|shared_buffers|dynamic_shared_memory_type|max_wal_size|min_wal_size|log_timezone|timezone|datestyle|lc_messages|lc_monetary|lc_numeric|lc_time|default_text_search_config'
{
  echo "# Written by AppStack's restore of stack $RESTORE_FROM (backup $chosen): the"
  echo "# settings initdb makes, kept from the backup; the operator passes the rest."
  echo "listen_addresses = '*'"
  grep -E "^($keys)[[:space:]]*=[[:space:]]*('[A-Za-z0-9_ ,./+:-]*'|[A-Za-z0-9_.]+)[[:space:]]*(#.*)?$" \
    "$stage/postgresql.conf" 2>/dev/null | sed -E 's/[[:space:]]*#.*$//'
} > "$stage/postgresql.conf.new"
mv "$stage/postgresql.conf.new" "$stage/postgresql.conf"
cat > "$stage/pg_hba.conf" <<'HBA'
# Written by AppStack's restore (as the image's initdb does): the pod's own
# socket is trusted, every address needs the password.
local all all trust
local replication all trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
host all all all scram-sha-256
HBA
echo "# Written by AppStack's restore: no user name maps." > "$stage/pg_ident.conf"
{
  echo "# Written by AppStack's restore of stack $RESTORE_FROM (backup $chosen); the"
  echo "# store's credentials container removes these once the server has promoted."
  # The server runs it from the same scripts volume as this one.
  echo "restore_command = '${0%/*}/pg-restore-wal %f %p'"
  echo "recovery_target_action = 'promote'"
  [ -n "$target" ] && echo "recovery_target_time = '$target_time'"
} > "$stage/postgresql.auto.conf"
chmod 600 "$stage/postgresql.conf" "$stage/pg_hba.conf" "$stage/pg_ident.conf" "$stage/postgresql.auto.conf"
touch "$stage/recovery.signal"
sync
mv "$stage" "$PGDATA" || fail "could not move the restored data into $PGDATA"
finish "restored base backup $chosen of stack $RESTORE_FROM${skipped:+ (skipped, as they fail verification:$skipped)}; PostgreSQL replays the archived WAL${RESTORE_TARGET:+ up to $RESTORE_TARGET}"
