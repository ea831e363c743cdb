# shellcheck disable=SC2154 # file: redis-users.sh
# After redis-users.sh, in the users init container of a Redis store with
# replicas (see src/build/stores/redis_ha.rs): the replicas' own user (only
# what replication needs), its password derived from the administrator's
# (it changes with it), and the configuration file through which a replica
# authenticates as it.
{ [ "$APP_USER" != replication ] && [ "${BACKUP_USER:-}" != replication ]; } || fail "the user name replication is the replicas' own: change the username of Secret $APPSTACK_SECRET or $APPSTACK_SECRET-backup"
replication=$(digest "appstack-replication:$REDISCLI_AUTH")
printf 'user replication on #%s resetkeys resetchannels -@all +psync +replconf +ping\n' "$(digest "$replication")" >> "$file" || fail "could not write $file"
printf 'masteruser replication\nmasterauth %s\n' "$replication" > "$APPSTACK_REPLICATION_CONF" || fail "could not write $APPSTACK_REPLICATION_CONF"
echo "wrote the replicas' user"
