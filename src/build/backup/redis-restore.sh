#!/bin/sh
# The restore init container of a new stack's Redis: only into an empty
# data volume, from the newest snapshot taken before the target whose
# checksum matches and which redis-check-rdb reads whole. From the
# environment: APPSTACK_RESTORE_DIR, APPSTACK_DATA_DIR and RESTORE_FROM,
# RESTORE_VOLUME, RESTORE_TARGET.
set -u
# shellcheck source=src/build/scripts/lib.sh
. "${0%/*}/lib"
src=${APPSTACK_RESTORE_DIR:?set by the operator in the pod; a pod made before these scripts lacks it and the next one has it}
data=${APPSTACK_DATA_DIR:?set by the operator in the pod; a pod made before these scripts lacks it and the next one has it}
if [ -e "$data/appendonlydir" ]; then
  finish "$data holds a dataset: nothing restored"
fi
# What an interrupted restore left: it starts over.
stage=$data/restoring
rm -rf "$stage"
target=
if [ -n "${RESTORE_TARGET:-}" ]; then
  target=$(date -u -d "$RESTORE_TARGET" +%s) || fail "spec.restore.pointInTime: $RESTORE_TARGET is no time this image's date understands"
fi
[ -d "$src" ] || fail "no Redis snapshot in volume $RESTORE_VOLUME of stack $RESTORE_FROM: take one first (kubectl create job --from=cronjob/$RESTORE_FROM-redis-backup <name>)"
chosen=
skipped=
for l in $(labels "$src" .rdb); do
  f=$l.rdb
  if [ -n "$target" ] && [ "$(label_epoch "$l")" -gt "$target" ]; then
    continue
  fi
  if [ "$(sha256sum "$src/$f" | cut -d' ' -f1)" = "$(cat "$src/$f.sha256" 2>/dev/null)" ] \
    && redis-check-rdb "$src/$f" > "$scratch/out" 2>&1; then
    chosen=$l
    break
  fi
  echo "snapshot $l does not check, trying an older one" >&2
  skipped="$skipped $l"
done
[ -n "$chosen" ] || fail "no checked Redis snapshot of stack $RESTORE_FROM taken before ${RESTORE_TARGET:-now} in volume $RESTORE_VOLUME"
echo "restoring snapshot $chosen of stack $RESTORE_FROM"
{ mkdir -p "$stage" && cp "$src/$chosen.rdb" "$stage/dump.rdb"; } || fail "could not copy snapshot $chosen"
# Redis runs with the append-only file: a private server loads the snapshot
# and writes the append-only file from it; the result is moved into place
# whole.
sock=$scratch/restore.sock
redis-server --dir "$stage" --dbfilename dump.rdb --appendonly no --save "" --port 0 \
  --unixsocket "$sock" --unixsocketperm 700 --daemonize no --loglevel warning &
pid=$!
until [ "$(redis-cli -s "$sock" ping 2>/dev/null)" = PONG ]; do
  kill -0 "$pid" 2>/dev/null || fail "Redis could not load snapshot $chosen"
  sleep 0.5
done
[ "$(redis-cli -s "$sock" config set appendonly yes)" = OK ] || fail "could not start the append-only file"
while :; do
  p=$(redis-cli -s "$sock" info persistence | tr -d '\r')
  if echo "$p" | grep -qx 'aof_rewrite_in_progress:0' && echo "$p" | grep -qx 'aof_rewrite_scheduled:0'; then
    { echo "$p" | grep -qx 'aof_last_bgrewrite_status:ok' && echo "$p" | grep -q '^aof_rewrites:[1-9]'; } \
      || fail "Redis could not write the append-only file from snapshot $chosen"
    break
  fi
  sleep 0.5
done
redis-cli -s "$sock" shutdown nosave > /dev/null 2>&1
wait "$pid" || true
sync "$stage"/appendonlydir/* "$stage/appendonlydir"
mv "$stage/appendonlydir" "$data/appendonlydir" || fail "could not move the restored append-only file into $data"
rm -rf "$stage"
finish "restored snapshot $chosen of stack $RESTORE_FROM${skipped:+ (skipped, as they fail their checks:$skipped)}"
