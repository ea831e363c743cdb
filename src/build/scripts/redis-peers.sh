# shellcheck shell=sh
# What the Redis and Sentinel containers of a store with replicas share
# (see src/build/stores/redis_ha.rs), after lib.sh. From the environment:
# APPSTACK_SET (the StatefulSet), APPSTACK_PEERS (its pods),
# APPSTACK_PEER_DOMAIN (the headless Service's domain), APPSTACK_PORT,
# APPSTACK_SENTINEL_PORT, APPSTACK_MASTER_NAME (Sentinel's name of the
# master), REDISCLI_AUTH (the administrator's password) and, with TLS,
# REDIS_TLS_CA_FILE. Kubernetes sets HOSTNAME to the pod's name.

# The DNS name of pod N, as Redis and Sentinel announce it.
peer() { printf '%s-%s.%s' "$APPSTACK_SET" "$1" "$APPSTACK_PEER_DOMAIN"; }
# shellcheck disable=SC3028
me="$HOSTNAME.$APPSTACK_PEER_DOMAIN"

# sentinel HOST ARGS...: what the Sentinel of HOST answers, in a few
# seconds at most (a pod that is gone must not hold the start).
sentinel() {
  _host=$1
  shift
  timeout 3 redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert "$REDIS_TLS_CA_FILE"} -h "$_host" -p "$APPSTACK_SENTINEL_PORT" "$@" 2>/dev/null
}

# The master the other pods' Sentinels report, the one most of them name;
# nothing when none answers (a fresh store, or every pod restarting). Only
# names of the store's own pods count.
reported_master() {
  _i=0
  while [ "$_i" -lt "$APPSTACK_PEERS" ]; do
    _p=$(peer "$_i")
    if [ "$_p" != "$me" ]; then
      sentinel "$_p" sentinel get-master-addr-by-name "$APPSTACK_MASTER_NAME" | head -n 1
    fi
    _i=$((_i + 1))
  done | while read -r _m; do
    case $_m in
      "$APPSTACK_SET"-[0-9]."$APPSTACK_PEER_DOMAIN") printf '%s\n' "$_m" ;;
    esac
  done | sort | uniq -c | sort -rn | head -n 1 | awk '{ print $2 }'
}

# A value for a Redis configuration file: double-quoted, with \ and "
# escaped. A value with a line break cannot be one.
quoted() {
  case $1 in *'
'*) fail "a password of Secret $APPSTACK_SECRET-admin or $APPSTACK_SECRET holds a line break, which Sentinel's configuration cannot: change it there" ;; esac
  printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"
}
