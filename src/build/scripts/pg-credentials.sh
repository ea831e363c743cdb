#!/bin/sh
# The credentials container of a PostgreSQL pod (see CREDENTIALS in
# src/build/stores/postgres.rs), after lib.sh. From the environment: the
# store container's (POSTGRES_*, APP_*, BACKUP_*), APPSTACK_SECRET,
# APPSTACK_PORT, APPSTACK_SOCKET_DIR and APPSTACK_TLS_CERT.
# It runs as PID 1: SIGTERM must end it, or it holds the pod for the whole
# grace period.
# Kubernetes sets HOSTNAME to the pod's name.
# shellcheck disable=SC3028
trap 'exit 0' TERM INT
socket=$APPSTACK_SOCKET_DIR
port=$APPSTACK_PORT
cert=$APPSTACK_TLS_CERT
recovering() {
  for u in "$POSTGRES_USER" "$APP_USER"; do
    r=$(psql -h "$socket" -p "$port" -U "$u" -d postgres -Atqc 'select pg_is_in_recovery()' 2>/dev/null) && { [ "$r" = t ]; return; }
  done
  return 1
}
up() { pg_isready -q -h 127.0.0.1 -p "$port" && ! recovering; }
# What psql says on stderr, only: the query's output is dropped.
# shellcheck disable=SC2069
login() { PGPASSWORD="$APP_PASSWORD" PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p "$port" -U "$APP_USER" -d "$POSTGRES_DB" -Atqc 'select 1' 2>&1 >/dev/null; }
# shellcheck disable=SC2069
roles() {
  who=$POSTGRES_USER
  psql -h "$socket" -p "$port" -U "$who" -d postgres -Atqc 'select 1' >/dev/null 2>&1 || who=$APP_USER
  psql -q -h "$socket" -p "$port" -U "$who" -d postgres -v ON_ERROR_STOP=1 -v admin="$POSTGRES_USER" -v app="$APP_USER" -v db="$POSTGRES_DB" 2>&1 >/dev/null <<'SQL' || return 1
\getenv adminpw POSTGRES_PASSWORD
\getenv apppw APP_PASSWORD
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'admin') AS missing \gset
\if :missing
CREATE ROLE :"admin";
\endif
ALTER ROLE :"admin" WITH SUPERUSER LOGIN PASSWORD :'adminpw';
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') AS missing \gset
\if :missing
CREATE ROLE :"app";
\endif
ALTER DATABASE :"db" OWNER TO :"app";
ALTER ROLE :"app" WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS PASSWORD :'apppw';
SQL
  psql -q -h "$socket" -p "$port" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -v ON_ERROR_STOP=1 -v app="$APP_USER" 2>&1 >/dev/null <<'SQL'
ALTER SCHEMA public OWNER TO :"app";
SQL
  [ -n "${BACKUP_USER:-}" ] || return 0
  psql -q -h "$socket" -p "$port" -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 -v backup="$BACKUP_USER" 2>&1 >/dev/null <<'SQL'
\getenv backuppw BACKUP_PASSWORD
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'backup') AS missing \gset
\if :missing
CREATE ROLE :"backup";
\endif
ALTER ROLE :"backup" WITH LOGIN REPLICATION NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS PASSWORD :'backuppw';
SQL
}
# A restore writes its recovery settings (restore_command, recovery_target_*)
# into postgresql.auto.conf; once the server has promoted they must go, or
# every later base backup carries the old target and cannot be restored
# past it. This also mends servers restored by an earlier release.
forget_restore() {
  psql -Atq -h "$socket" -p "$port" -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 2>&1 <<'SQL'
SELECT count(*) > 0 AS restored FROM pg_file_settings
 WHERE sourcefile LIKE '%/postgresql.auto.conf'
   AND (name = 'restore_command' OR name LIKE 'recovery\_target%') \gset
\if :restored
ALTER SYSTEM RESET restore_command;
ALTER SYSTEM RESET recovery_target;
ALTER SYSTEM RESET recovery_target_action;
ALTER SYSTEM RESET recovery_target_inclusive;
ALTER SYSTEM RESET recovery_target_lsn;
ALTER SYSTEM RESET recovery_target_name;
ALTER SYSTEM RESET recovery_target_time;
ALTER SYSTEM RESET recovery_target_timeline;
ALTER SYSTEM RESET recovery_target_xid;
SELECT pg_reload_conf() \gset
\echo removed the recovery settings of the restore from postgresql.auto.conf: later backups restore to any point
\endif
SQL
}
# Without TLS there is no certificate: nothing is said (stderr is
# redirected before the file is opened).
served=$(cksum 2>/dev/null < "$cert")
until up; do pause 2; done
out=$(roles) || fail "could not set the roles from Secrets $APPSTACK_SECRET and $APPSTACK_SECRET-admin: $out. Fix the roles in pod $HOSTNAME; this check runs again when its container restarts"
echo "roles $POSTGRES_USER (administrator), $APP_USER (the apps')${BACKUP_USER:+ and $BACKUP_USER (backups)} set from the Secrets"
if out=$(forget_restore); then
  [ -z "$out" ] || echo "$out"
else
  echo "could not remove the restore's recovery settings: $out. Backups refuse to run until they are gone; this runs again when the container restarts" >&2
fi
while :; do
  now=$(cksum 2>/dev/null < "$cert")
  if [ "$now" != "$served" ] && up && psql -h "$socket" -p "$port" -U "$POSTGRES_USER" -d postgres -Atqc 'select pg_reload_conf()' >/dev/null 2>&1; then
    served=$now
    echo "loaded the renewed server certificate"
  fi
  if up && ! err=$(login); then
    if ! out=$(roles); then
      up && fail "could not set the roles from Secrets $APPSTACK_SECRET and $APPSTACK_SECRET-admin: $out. The apps cannot connect: fix the roles in pod $HOSTNAME; this check runs again when its container restarts"
    elif ! err=$(login); then
      up && fail "PostgreSQL refuses the credentials of Secret $APPSTACK_SECRET (user $APP_USER, database $POSTGRES_DB) even after setting the password from it: $err. Fix the role or database (e.g. ALTER ROLE ... LOGIN, CREATE DATABASE) in pod $HOSTNAME; this check runs again when its container restarts"
    else
      echo "password of $APP_USER set from Secret $APPSTACK_SECRET"
    fi
  fi
  pause 10
done
