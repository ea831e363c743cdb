#!/bin/sh
# The credentials container of a Redis pod (see CREDENTIALS in
# src/build/stores/redis.rs), after lib.sh. From the environment: the store
# container's (REDISCLI_AUTH, APP_*, REDIS_TLS_CA_FILE with TLS),
# APPSTACK_SECRET, APPSTACK_PORT, APPSTACK_TLS_CERT and APPSTACK_APP_HASHES
# (the operator's passwords Secret's file: the SHA-256 of every password
# the apps' user accepts, see src/build/rotation.rs).
# It runs as PID 1: SIGTERM must end it, or it holds the pod for the whole
# grace period.
# Kubernetes sets HOSTNAME to the pod's name.
# shellcheck disable=SC3028
trap 'exit 0' TERM INT
cert=$APPSTACK_TLS_CERT
refused() { case "$1" in *NOAUTH*|*WRONGPASS*|*NOPERM*) return 0 ;; esac; return 1; }
cli() { redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert "$REDIS_TLS_CA_FILE"} -h 127.0.0.1 -p "$APPSTACK_PORT" "$@" 2>&1; }
hashes=${APPSTACK_APP_HASHES:-}
# The apps' user's password hashes, one a line, sorted: as the operator's
# Secret says (nothing when it is not mounted yet), and as Redis holds them.
wanted() { tr -s ' ' '\n' 2>/dev/null < "$hashes" | grep -E '^[0-9a-f]{64}$' | sort; }
# With replicas, the pod's Sentinel has the apps' user too (Sentinel-aware
# clients ask it where the master is with the apps' password).
scli() { redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert "$REDIS_TLS_CA_FILE"} -h 127.0.0.1 -p "$APPSTACK_SENTINEL_PORT" "$@" 2>&1; }
held() { "$1" acl getuser "$APP_USER" | sed -n '/^passwords$/,/^commands$/p' | grep -E '^[0-9a-f]{64}$' | sort; }
# Sets the apps' user's passwords to exactly the wanted hashes, live, in
# Redis (cli) or Sentinel (scli): the command goes to redis-cli on its
# standard input, never as an argument. Said only when it changed something.
passwords() {
  want=$(wanted)
  [ -n "$want" ] || return 0
  have=$(held "$1")
  [ "$want" = "$have" ] && return 0
  # shellcheck disable=SC2086
  out=$(printf 'ACL SETUSER %s resetpass%s\n' "$APP_USER" "$(printf ' #%s' $want)" | "$1")
  [ "$out" = OK ] || { echo "could not set the passwords of $APP_USER ($1) from the operator's Secret: $(printf '%s' "$out" | head -n 1)" >&2; return 0; }
  echo "the apps' user $APP_USER accepts $(printf '%s\n' "$want" | wc -l | tr -d ' ') password(s) now in $2 (was $(printf '%s' "$have" | grep -c .))"
}
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
  # With the operator's hashes, they are what the apps' user accepts (the
  # password in this container's environment may be an old one by now).
  if [ -n "$hashes" ] && [ -s "$hashes" ]; then
    [ "$out" = PONG ] && passwords cli Redis
    [ -z "${APPSTACK_SENTINEL_PORT:-}" ] || [ "$(scli ping)" != PONG ] || passwords scli Sentinel
    pause 5
    continue
  fi
  out=$(REDISCLI_AUTH="$APP_PASSWORD" cli --user "$APP_USER" ping)
  refused "$out" && fail "Redis refuses the apps' user $APP_USER of Secret $APPSTACK_SECRET ($(printf '%s' "$out" | head -n 1)): it was changed inside Redis (ACL SETUSER or DELUSER). Delete pod $HOSTNAME to restart Redis with the Secrets' credentials"
  pause 10
done
