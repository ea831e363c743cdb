#!/bin/sh
# The users init container of a Redis pod (see USERS in
# src/build/stores/redis.rs), after lib.sh: writes Redis' ACL file,
# APPSTACK_USERS_FILE, from the Secrets in the environment (REDISCLI_AUTH,
# APP_*, BACKUP_* with backups), with SHA-256 hashes only. `printf` is the
# shell's own, so the passwords reach sha256sum on its standard input only.
trap 'exit 0' TERM INT
umask 077
file=$APPSTACK_USERS_FILE
command -v sha256sum > /dev/null || fail "this Redis image has no sha256sum, without which Redis' users would hold their passwords in clear: use an image with coreutils or busybox"
digest() { printf '%s' "$1" | sha256sum | cut -d ' ' -f 1; }
# A user name is one word of printable characters, and no one else's.
named() {
  case "$2" in
    ''|*[![:graph:]]*) fail "the username of Secret $1 is no Redis user name (one word of printable characters): change it there" ;;
    default) fail "the username of Secret $1 is default, Redis' administrator: change it there" ;;
  esac
}
named "$APPSTACK_SECRET" "$APP_USER"
{ [ -n "$REDISCLI_AUTH" ] && [ -n "$APP_PASSWORD" ]; } || fail "a password of Secret $APPSTACK_SECRET or $APPSTACK_SECRET-admin is empty"
{
  printf 'user default on #%s ~* &* +@all\n' "$(digest "$REDISCLI_AUTH")"
  printf 'user %s on #%s ~* &* +@all -@admin -@dangerous\n' "$APP_USER" "$(digest "$APP_PASSWORD")"
  if [ -n "${BACKUP_USER:-}" ]; then
    named "$APPSTACK_SECRET-backup" "$BACKUP_USER"
    [ "$BACKUP_USER" != "$APP_USER" ] || fail "Secrets $APPSTACK_SECRET and $APPSTACK_SECRET-backup name the same user $APP_USER: change one of them"
    [ -n "$BACKUP_PASSWORD" ] || fail "the password of Secret $APPSTACK_SECRET-backup is empty"
    printf 'user %s on #%s resetkeys resetchannels -@all +sync +replconf\n' "$BACKUP_USER" "$(digest "$BACKUP_PASSWORD")"
  fi
} > "$file.new" || fail "could not write $file"
mv "$file.new" "$file" || fail "could not write $file"
echo "wrote Redis' users into $file"
