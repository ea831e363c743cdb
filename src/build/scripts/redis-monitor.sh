#!/bin/sh
# The monitoring user of a Redis pod (see src/build/metrics.rs): put after
# redis-users.sh, whose ACL file ($file) and helpers (named, digest) it
# uses. From the environment: MONITOR_USER and MONITOR_PASSWORD (Secret
# <stack>-redis-monitor) when the store runs an exporter. The user may run
# PING, INFO, LATENCY LATEST/HISTOGRAM, SLOWLOG LEN and CLIENT SETNAME (what
# redis_exporter's default metrics need) and nothing else: no key, no
# channel, no CONFIG (a replica's masterauth would be readable), no SLOWLOG
# GET or CLIENT LIST (they quote the apps' commands).
# shellcheck disable=SC2154
if [ -n "${MONITOR_USER:-}" ]; then
  named "$APPSTACK_SECRET-monitor" "$MONITOR_USER"
  case "$MONITOR_USER" in
    "$APP_USER"|"${BACKUP_USER:-default}") fail "Secret $APPSTACK_SECRET-monitor names user $MONITOR_USER, which another Secret names: change it there" ;;
  esac
  [ -n "$MONITOR_PASSWORD" ] || fail "the password of Secret $APPSTACK_SECRET-monitor is empty"
  printf 'user %s on #%s resetkeys resetchannels -@all +ping +info +latency|latest +latency|histogram +slowlog|len +client|setname\n' \
    "$MONITOR_USER" "$(digest "$MONITOR_PASSWORD")" >> "$file" || fail "could not write $file"
  echo "added the monitoring user $MONITOR_USER to $file"
fi
