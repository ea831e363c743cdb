#!/bin/sh
# The PostgreSQL container of a store with more than one instance (see
# INSTANCE in src/build/stores/postgres.rs), after lib.sh; its arguments are
# the server's options. From the environment: the store container's
# (POSTGRES_*, PGDATA, REPLICATION_*), APPSTACK_PORT, APPSTACK_SOCKET_DIR,
# APPSTACK_PRIMARY_HOST (the write Service), APPSTACK_PODINFO (this pod's
# labels, kept current by the kubelet) and APPSTACK_CA.
#
# The operator decides who is primary (it labels that pod and promotes a
# standby with pg_promote); this script never makes a second primary:
# - an empty volume: a copy of the primary (pg_basebackup) once the write
#   Service leads to one; the first pod (ordinal 0) initialises the store
#   when no primary answers (the store's first start). The operator only
#   ever labels and follows the database it first saw (its system
#   identifier, in status), so a first pod that lost its volume and
#   initialised a new one is never written to: it is restarted, and copies.
# - a standby's data (standby.signal): a standby, whatever the labels say
#   (only the operator promotes); rewound first (pg_rewind) when a primary
#   answers, copied again when that fails;
# - a primary's data, labelled primary: the server starts as it is (a
#   restarted container);
# - a primary's data otherwise (the operator moved the primary away): it
#   waits for the new primary, rewinds and follows it. With no primary
#   for a minute (the whole store restarted) it starts as a standby anyway:
#   the operator reads its WAL position and may promote it.
# Kubernetes sets HOSTNAME to the pod's name.
# shellcheck disable=SC3028
# PID 1 until it execs the server: SIGTERM must end the wait for a primary.
trap 'exit 0' TERM INT
port=$APPSTACK_PORT
primary=$APPSTACK_PRIMARY_HOST
ca=$APPSTACK_CA
pass=$APPSTACK_SOCKET_DIR/replication.pass
umask 077
# libpq's password file: ':' and '\' escaped.
esc() { printf '%s' "$1" | sed 's/[\\:]/\\&/g'; }
printf '%s:%s:*:%s:%s\n' "$(esc "$primary")" "$port" "$(esc "$REPLICATION_USER")" "$(esc "$REPLICATION_PASSWORD")" > "$pass"
labelled_primary() { grep -qx 'appstack.dev/role="primary"' "$APPSTACK_PODINFO" 2>/dev/null; }
as_admin() {
  PGPASSWORD="$POSTGRES_PASSWORD" PGSSLMODE=verify-full PGSSLROOTCERT="$ca" PGCONNECT_TIMEOUT=3 "$@"
}
primary_up() {
  r=$(as_admin psql -h "$primary" -p "$port" -U "$POSTGRES_USER" -d postgres -Atqc 'select pg_is_in_recovery()' 2>/dev/null) && [ "$r" = f ]
}
clone() {
  rm -rf "${PGDATA:?}"/* 2>/dev/null
  PGSSLMODE=verify-full PGSSLROOTCERT="$ca" PGPASSFILE="$pass" PGCONNECT_TIMEOUT=5 \
    pg_basebackup -h "$primary" -p "$port" -U "$REPLICATION_USER" -D "$PGDATA" -X stream -c fast -w &&
    touch "$PGDATA/standby.signal"
}
# Rewind to the primary's timeline (copy again when that fails), as a standby.
follow() {
  rm -f "$PGDATA/standby.signal"
  if out=$(as_admin pg_rewind -D "$PGDATA" --source-server="host=$primary port=$port user=$POSTGRES_USER dbname=postgres" 2>&1); then
    echo "$out"
  else
    echo "pg_rewind failed ($out): copying the primary's data again" >&2
    until clone; do
      echo "could not copy the primary's data; trying again" >&2
      pause 2
    done
  fi
  touch "$PGDATA/standby.signal"
}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  while :; do
    if primary_up; then
      if clone; then
        echo "copied the primary's data: starting as its standby"
        break
      fi
      echo "could not copy the primary's data; trying again" >&2
    elif [ "${HOSTNAME##*-}" = 0 ]; then
      echo "no primary answers: initialising the store"
      break
    fi
    pause 2
  done
elif [ -f "$PGDATA/standby.signal" ]; then
  if primary_up; then follow; fi
elif labelled_primary; then
  echo "the primary: starting as it is"
else
  echo "was the primary and is no longer labelled: waiting for the new primary"
  waited=0
  until primary_up || [ "$waited" -ge 60 ]; do
    pause 2
    waited=$((waited + 2))
  done
  if primary_up; then
    follow
  else
    echo "no primary answers: starting as a standby for the operator to choose" >&2
    touch "$PGDATA/standby.signal"
  fi
fi
conninfo="host=$primary port=$port user=$REPLICATION_USER passfile=$pass sslmode=verify-full sslrootcert=$ca application_name=$HOSTNAME"
exec docker-entrypoint.sh postgres "$@" -c "primary_conninfo=$conninfo"
