# shellcheck disable=SC2154 # me: redis-peers.sh
# The Sentinel container of a store with replicas (see SENTINEL in
# src/build/stores/redis_ha.rs), after lib.sh and redis-peers.sh. Writes
# Sentinel's configuration (which Sentinel rewrites as it learns) into
# APPSTACK_SENTINEL_DIR, a memory volume, and runs it. Sentinel monitors
# the master the other Sentinels report (the first pod in a fresh store),
# announces the pod's DNS name, needs the administrator's password of
# clients and of the other Sentinels, lets the apps' user ask where the
# master is (and no more), and speaks TLS when the store does.
umask 077
conf=$APPSTACK_SENTINEL_DIR/sentinel.conf
master=$(reported_master)
[ -n "$master" ] || master=$(peer 0)
# Sentinel refuses to start on a name it cannot resolve: the pod's own
# name appears through the headless Service a moment after it starts.
retry 30 1 getent hosts "$master" > /dev/null || fail "cannot resolve $master, the master Sentinel is to monitor"
digest() { printf '%s' "$1" | sha256sum | cut -d ' ' -f 1; }
admin=$(quoted "$REDISCLI_AUTH")
{
  if [ -n "${REDIS_TLS_CA_FILE:-}" ]; then
    printf 'port 0\ntls-port %s\n' "$APPSTACK_SENTINEL_PORT"
    printf 'tls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n' "$APPSTACK_TLS_CERT" "$APPSTACK_TLS_KEY" "$REDIS_TLS_CA_FILE"
    printf 'tls-auth-clients no\ntls-replication yes\n'
  else
    printf 'port %s\n' "$APPSTACK_SENTINEL_PORT"
  fi
  printf 'dir %s\nprotected-mode no\n' "$APPSTACK_SENTINEL_DIR"
  printf 'user default on #%s ~* &* +@all\n' "$(digest "$REDISCLI_AUTH")"
  printf 'user %s on #%s resetchannels &* -@all +auth +hello +ping +role +sentinel|get-master-addr-by-name +sentinel|master +sentinel|replicas +sentinel|sentinels +subscribe +unsubscribe +psubscribe +punsubscribe +client|setname\n' "$APP_USER" "$(digest "$APP_PASSWORD")"
  printf 'sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n'
  printf 'sentinel announce-ip %s\nsentinel announce-port %s\n' "$me" "$APPSTACK_SENTINEL_PORT"
  printf 'sentinel sentinel-user default\nsentinel sentinel-pass %s\n' "$admin"
  printf 'sentinel monitor %s %s %s %s\n' "$APPSTACK_MASTER_NAME" "$master" "$APPSTACK_PORT" "$APPSTACK_QUORUM"
  printf 'sentinel auth-user %s default\nsentinel auth-pass %s %s\n' "$APPSTACK_MASTER_NAME" "$APPSTACK_MASTER_NAME" "$admin"
  printf 'sentinel down-after-milliseconds %s 5000\n' "$APPSTACK_MASTER_NAME"
  printf 'sentinel failover-timeout %s 20000\n' "$APPSTACK_MASTER_NAME"
  printf 'sentinel parallel-syncs %s 1\n' "$APPSTACK_MASTER_NAME"
} > "$conf" || fail "could not write $conf"
echo "Sentinel monitors $master"
exec redis-server "$conf" --sentinel
