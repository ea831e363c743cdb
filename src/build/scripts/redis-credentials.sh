#!/bin/sh
# The credentials container of a Redis pod (see CREDENTIALS in
# src/build/stores/redis.rs), after lib.sh. From the environment: the store
# container's (REDISCLI_AUTH, APP_*, REDIS_TLS_CA_FILE with TLS),
# APPSTACK_SECRET, APPSTACK_PORT and APPSTACK_TLS_CERT.
# It runs as PID 1: SIGTERM must end it, or it holds the pod for the whole
# grace period.
# Kubernetes sets HOSTNAME to the pod's name.
# shellcheck disable=SC3028
trap 'exit 0' TERM INT
cert=$APPSTACK_TLS_CERT
refused() { case "$1" in *NOAUTH*|*WRONGPASS*|*NOPERM*) return 0 ;; esac; return 1; }
cli() { redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert "$REDIS_TLS_CA_FILE"} -h 127.0.0.1 -p "$APPSTACK_PORT" "$@" 2>&1; }
# Without TLS there is no certificate: nothing is said (stderr is
# redirected before the file is opened).
served=$(cksum 2>/dev/null < "$cert")
while :; do
  now=$(cksum 2>/dev/null < "$cert")
  if [ "$now" != "$served" ] && out=$(cli config set tls-cert-file "$cert") && [ "$out" = OK ]; then
    served=$now
    echo "loaded the renewed server certificate"
  fi
  out=$(cli ping)
  refused "$out" && fail "Redis refuses the administrator's password of Secret $APPSTACK_SECRET-admin ($(printf '%s' "$out" | head -n 1)): it was changed inside Redis (CONFIG SET requirepass or ACL). Delete pod $HOSTNAME to restart Redis with the Secrets' credentials"
  out=$(REDISCLI_AUTH="$APP_PASSWORD" cli --user "$APP_USER" ping)
  refused "$out" && fail "Redis refuses the apps' user $APP_USER of Secret $APPSTACK_SECRET ($(printf '%s' "$out" | head -n 1)): it was changed inside Redis (ACL SETUSER or DELUSER). Delete pod $HOSTNAME to restart Redis with the Secrets' credentials"
  pause 10
done
