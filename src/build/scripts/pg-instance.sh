#!/bin/sh
# The PostgreSQL container of a store with more than one instance (see
# INSTANCE in src/build/stores/postgres.rs), after lib.sh; its arguments are
# the server's options. From the environment: the store container's
# (POSTGRES_*, PGDATA, REPLICATION_*), APPSTACK_PORT, APPSTACK_SOCKET_DIR,
# APPSTACK_PRIMARY_HOST (the write Service), APPSTACK_PODINFO (this pod's
# labels, kept current by the kubelet) and APPSTACK_CA.
#
# The operator decides who is primary and labels that pod; this script only
# starts the server in the part it was given:
# - an empty volume, labelled primary: the store's first start, the image's
#   entrypoint initialises it;
# - an empty volume otherwise: a copy of the primary (pg_basebackup), once
#   the write Service leads to one;
# - data, labelled primary: the server starts as it is;
# - data otherwise: a standby of the write Service's primary, rewound first
#   (pg_rewind) when it was a primary on a timeline the new one left, and
#   copied again when that fails. With no primary to follow it starts as a
#   standby anyway: the operator reads its WAL position and may promote it.
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
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until labelled_primary; do
    if primary_up; then
      if clone; then
        echo "copied the primary's data: starting as its standby"
        break
      fi
      echo "could not copy the primary's data; trying again" >&2
    fi
    pause 2
  done
elif ! labelled_primary; then
  if primary_up; then
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
  fi
  touch "$PGDATA/standby.signal"
fi
conninfo="host=$primary port=$port user=$REPLICATION_USER passfile=$pass sslmode=verify-full sslrootcert=$ca application_name=$HOSTNAME"
exec docker-entrypoint.sh postgres "$@" -c "primary_conninfo=$conninfo"
