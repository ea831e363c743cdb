#!/bin/sh
# An RDB snapshot of Redis into the backup volume, then retention. The
# snapshot is written as <label>.rdb.partial and becomes <label>.rdb only
# once redis-check-rdb has read it whole and its SHA-256 is written beside
# it; restores take only <label>.rdb files whose checksum matches. The
# result (JSON) or the reason of a failure is the termination message.
set -u
root=/var/lib/appstack/backup/redis
fail() { printf '%s\n' "$*" > /dev/termination-log; printf '%s\n' "$*" >&2; exit 1; }
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
label_epoch() { date -u -d "$(printf '%s' "$1" | sed -E 's/^(....)(..)(..)T(..)(..)(..)Z$/\1-\2-\3 \4:\5:\6Z/')" +%s; }
mkdir -p "$root" || fail "cannot write to the backup volume at $root"
rm -f "$root"/*.partial
label=$(date -u +%Y%m%dT%H%M%SZ)
file="$root/$label.rdb"
echo "RDB snapshot $label of $REDIS_HOST as $REDIS_USER"
cli() { redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert "$REDIS_TLS_CA_FILE"} -h "$REDIS_HOST" -p "$REDIS_PORT" --user "$REDIS_USER" --no-auth-warning "$@"; }
# A new pod may wait a moment for the network policy to admit it. The
# backup user may not even PING: a refusal is an answer.
tries=0
until cli ping 2>&1 | grep -qE 'PONG|NOPERM'; do
  tries=$((tries + 1))
  [ "$tries" -lt 30 ] || fail "Redis at $REDIS_HOST does not answer: $(cli ping 2>&1 | head -n 1)"
  sleep 2
done
cli --rdb "$file.partial" > /tmp/out 2>&1 \
  || fail "redis-cli --rdb failed: $(tail -n 3 /tmp/out)"
redis-check-rdb "$file.partial" > /tmp/out 2>&1 || fail "the snapshot does not check: $(grep -v '^\[offset' /tmp/out | tail -n 3)"
sha256sum "$file.partial" | cut -d' ' -f1 > "$file.sha256"
sync "$file.partial" "$file.sha256"
mv "$file.partial" "$file" && sync "$root" || fail "could not rename $file.partial"
size=$(stat -c %s "$file")
echo "checked: $size bytes"

now=$(date -u +%s)
kept=0
oldest=
for f in $(ls -1 "$root" | grep -E '^[0-9]{8}T[0-9]{6}Z\.rdb$' | sort -r); do
  l=${f%.rdb}
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
summary=$(printf '{"label":"%s","completed":"%s","sizeBytes":%s,"count":%s,"totalBytes":%s,"firstRecoverable":"%s","lastRecoverable":"%s"}' \
  "$label" "$(iso "$now")" "$size" "$kept" "$total" "$(iso "$(label_epoch "$oldest")")" "$(iso "$(label_epoch "$label")")")
printf '%s\n' "$summary" > /dev/termination-log
printf '%s\n' "$summary" > "$root/.summary.json"
echo "$summary"
