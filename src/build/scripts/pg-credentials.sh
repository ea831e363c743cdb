#!/bin/sh
# The credentials container of a PostgreSQL pod (see CREDENTIALS in
# src/build/stores/postgres.rs), after lib.sh. From the environment: the
# store container's (POSTGRES_*, APP_*, BACKUP_*), APPSTACK_SECRET,
# APPSTACK_PORT, APPSTACK_SOCKET_DIR, APPSTACK_TLS_CERT and APPSTACK_LOGINS
# (the directory of the operator's passwords Secret: the apps' roles, see
# src/build/rotation.rs; its files change live, this environment does not).
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
logins=${APPSTACK_LOGINS:-}
started_as=$APP_USER
# With the operator's Secret mounted, the apps' login role and password are
# its files: APP_USER and APP_PASSWORD are what the pod started with.
alternating() { [ -n "$logins" ] && [ -s "$logins/login" ] && [ -s "$logins/password" ] && [ -s "$logins/owner" ]; }
current() {
  if alternating; then
    APP_USER=$(cat "$logins/login")
    # Byte for byte: $(...) would drop a trailing newline of the password.
    APP_PASSWORD=$(cat "$logins/password"; printf x)
    APP_PASSWORD=${APP_PASSWORD%x}
  fi
}
said=$(cat "$logins/login" "$logins/password" "$logins/owner" "$logins/retire" 2>/dev/null | cksum)
# What psql says on stderr, only: the query's output is dropped.
# shellcheck disable=SC2069
login() { PGPASSWORD="$APP_PASSWORD" PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p "$port" -U "$APP_USER" -d "$POSTGRES_DB" -Atqc 'select 1' 2>&1 >/dev/null; }
# The backup tools' role (replication, no superuser), when the store has one.
# shellcheck disable=SC2069
backup_role() {
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
# shellcheck disable=SC2069
roles() {
  current
  if alternating; then roles_alternating; return; fi
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
  backup_role
}
# The administrator, then the apps' roles in one transaction in the stack's
# database: the owner role (NOLOGIN) owns the database and what is in it;
# the login role the apps use now has the password, is a member of the
# owner and acts as it (`SET role`); the retired one can no longer log in.
# A server made by an earlier release hands its objects to the owner: from
# the apps' role of the release before (REASSIGN OWNED), and from the
# bootstrap superuser when that was the apps' role (PostgreSQL 16 and later
# keep it a superuser: it is renamed appstack_bootstrap and can no longer
# log in; REASSIGN OWNED cannot take the system's objects from it, so its
# schemas, relations, routines and types outside the system's are handed
# over one by one).
# shellcheck disable=SC2069
roles_alternating() {
  owner=$(cat "$logins/owner")
  retire=$(cat "$logins/retire" 2>/dev/null)
  # No role of the server's own may become or lose an apps' role.
  for n in "$APP_USER" "$retire" "$owner"; do
    [ -n "$n" ] || continue
    case "$n" in
      "$POSTGRES_USER"|"${BACKUP_USER:-$POSTGRES_USER}"|appstack_bootstrap|pg_*)
        echo "the apps' roles may not be $n (the administrator's, the backups' or the server's own): change the username of Secret $APPSTACK_SECRET"
        return 1 ;;
    esac
  done
  if [ "$owner" = "$APP_USER" ] || [ "$owner" = "$retire" ]; then
    echo "the apps' login role may not be their owner role $owner: change the username of Secret $APPSTACK_SECRET"
    return 1
  fi
  # Over the socket (trusted) as the first that exists: the administrator,
  # else (a server of an earlier release) the apps' role the pod started
  # with, which is then a superuser.
  for who in "$POSTGRES_USER" "$started_as" "$APP_USER"; do
    psql -h "$socket" -p "$port" -U "$who" -d postgres -Atqc 'select 1' >/dev/null 2>&1 && break
  done
  psql -q -h "$socket" -p "$port" -U "$who" -d postgres -v ON_ERROR_STOP=1 -v admin="$POSTGRES_USER" 2>&1 >/dev/null <<'SQL' || return 1
\getenv adminpw POSTGRES_PASSWORD
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'admin') AS missing \gset
\if :missing
CREATE ROLE :"admin";
\endif
ALTER ROLE :"admin" WITH SUPERUSER LOGIN PASSWORD :'adminpw';
SQL
  APPSTACK_LOGIN_PASSWORD=$APP_PASSWORD psql -q -h "$socket" -p "$port" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -v ON_ERROR_STOP=1 -v admin="$POSTGRES_USER" -v owner="$owner" -v login="$APP_USER" -v retire="$retire" -v db="$POSTGRES_DB" 2>&1 >/dev/null <<'SQL' || return 1
\getenv loginpw APPSTACK_LOGIN_PASSWORD
BEGIN;
SELECT set_config('appstack.owner', :'owner', true) \gset
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') AS missing \gset
\if :missing
CREATE ROLE :"owner";
\endif
ALTER ROLE :"owner" WITH NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS;
SELECT rolname AS boot, rolname NOT IN (:'admin', 'appstack_bootstrap') AS handover FROM pg_roles WHERE oid = 10 \gset
\if :handover
DO $do$
DECLARE
  o text := current_setting('appstack.owner');
  r record;
BEGIN
  FOR r IN SELECT n.nspname FROM pg_namespace n
    WHERE n.nspowner = 10 AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', r.nspname, o);
  END LOOP;
  FOR r IN SELECT c.oid::regclass::text AS name, c.relkind FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = 10 AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
        AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I', CASE r.relkind WHEN 'v' THEN 'VIEW'
      WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE'
      ELSE 'TABLE' END, r.name, o);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure::text AS name FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.proowner = 10 AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
        AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO %I', r.name, o);
  END LOOP;
  FOR r IN SELECT t.oid::regtype::text AS name, t.typtype FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typowner = 10 AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
      AND t.typtype IN ('e', 'd', 'r')
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
        AND d.objid = t.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I', CASE r.typtype WHEN 'd' THEN 'DOMAIN'
      ELSE 'TYPE' END, r.name, o);
  END LOOP;
END
$do$;
ALTER ROLE :"boot" RENAME TO appstack_bootstrap;
ALTER ROLE appstack_bootstrap WITH NOLOGIN PASSWORD NULL;
\endif
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'login') AS missing \gset
\if :missing
CREATE ROLE :"login";
\endif
ALTER ROLE :"login" WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS PASSWORD :'loginpw';
GRANT :"owner" TO :"login";
ALTER ROLE :"login" SET role = :'owner';
REASSIGN OWNED BY :"login" TO :"owner";
SELECT :'retire' <> '' AND :'retire' <> :'login' AND EXISTS (SELECT FROM pg_roles WHERE rolname = :'retire') AS retiring \gset
\if :retiring
ALTER ROLE :"retire" WITH NOLOGIN PASSWORD NULL;
REASSIGN OWNED BY :"retire" TO :"owner";
\endif
ALTER DATABASE :"db" OWNER TO :"owner";
ALTER SCHEMA public OWNER TO :"owner";
COMMIT;
SQL
  backup_role
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
out=$(monitor_role) || fail "could not set the monitoring role from Secret $APPSTACK_SECRET-monitor: $out. Fix the role in pod $HOSTNAME; this check runs again when its container restarts"
current
echo "roles $POSTGRES_USER (administrator), $APP_USER (the apps')${BACKUP_USER:+ and $BACKUP_USER (backups)} set from the Secrets"
if out=$(forget_restore); then
  [ -z "$out" ] || echo "$out"
else
  echo "could not remove the restore's recovery settings: $out. Backups refuse to run until they are gone; this runs again when the container restarts" >&2
fi
tick=0
while :; do
  now=$(cksum 2>/dev/null < "$cert")
  if [ "$now" != "$served" ] && up && psql -h "$socket" -p "$port" -U "$POSTGRES_USER" -d postgres -Atqc 'select pg_reload_conf()' >/dev/null 2>&1; then
    served=$now
    echo "loaded the renewed server certificate"
  fi
  # The operator's Secret changed (a rotation, or the apps all rolled):
  # the roles follow at once, before the apps' new pods try them.
  now=$(cat "$logins/login" "$logins/password" "$logins/owner" "$logins/retire" 2>/dev/null | cksum)
  if [ "$now" != "$said" ] && alternating && up; then
    if out=$(roles); then
      said=$now
      current
      retired=$(cat "$logins/retire" 2>/dev/null)
      echo "roles set from the operator's Secret: the apps log in as $APP_USER${retired:+; $retired can no longer log in}"
    else
      echo "could not set the roles from the operator's Secret: $out" >&2
    fi
  fi
  current
  tick=$((tick + 1))
  if [ $((tick % 5)) -eq 1 ] && up && ! err=$(login); then
    if ! out=$(roles); then
      up && fail "could not set the roles from Secrets $APPSTACK_SECRET and $APPSTACK_SECRET-admin: $out. The apps cannot connect: fix the roles in pod $HOSTNAME; this check runs again when its container restarts"
    elif ! err=$(login); then
      up && fail "PostgreSQL refuses the credentials of Secret $APPSTACK_SECRET (user $APP_USER, database $POSTGRES_DB) even after setting the password from it: $err. Fix the role or database (e.g. ALTER ROLE ... LOGIN, CREATE DATABASE) in pod $HOSTNAME; this check runs again when its container restarts"
    else
      echo "password of $APP_USER set from Secret $APPSTACK_SECRET"
    fi
  fi
  pause 2
done
