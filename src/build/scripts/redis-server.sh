# shellcheck disable=SC2154 # me: redis-peers.sh
# The Redis container of a store with replicas (see SERVER in
# src/build/stores/redis_ha.rs), after lib.sh and redis-peers.sh; its
# arguments are the server's. Redis starts as a replica of the master the
# Sentinels report, so a pod that was the master comes back as a replica
# of the one promoted meanwhile, never as a second master. A fresh store
# (no Sentinel answers) starts with its first pod as the master.
master=$(reported_master)
if [ "$master" = "$me" ]; then
  # The Sentinels still take this pod, which has just started with no
  # Redis in it, for the master: have them promote a replica before Redis
  # starts, rather than come back as the master beside it later. Without a
  # replica to promote (none was in sync), it stays the master.
  echo "the Sentinels still name this pod the master: asking them to promote a replica"
  _i=0
  while [ "$_i" -lt "$APPSTACK_PEERS" ]; do
    _p=$(peer "$_i")
    if [ "$_p" != "$me" ] && [ "$(sentinel "$_p" sentinel failover "$APPSTACK_MASTER_NAME")" = OK ]; then
      break
    fi
    _i=$((_i + 1))
  done
  _tries=20
  while [ "$_tries" -gt 0 ] && [ "$master" = "$me" ]; do
    pause 1
    master=$(reported_master)
    _tries=$((_tries - 1))
  done
fi
[ -n "$master" ] || master=$(peer 0)
if [ "$master" = "$me" ]; then
  echo "starting as the master"
  exec redis-server "$APPSTACK_REPLICATION_CONF" "$@" --replica-announce-ip "$me"
fi
echo "starting as a replica of $master"
exec redis-server "$APPSTACK_REPLICATION_CONF" "$@" --replica-announce-ip "$me" --replicaof "$master" "$APPSTACK_PORT"
