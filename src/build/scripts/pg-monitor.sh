#!/bin/sh
# The monitoring role of a PostgreSQL pod (see src/build/metrics.rs): put
# before pg-credentials.sh, which calls monitor_role once the other roles
# are set, with its $socket and $port. From the environment: MONITOR_USER
# and MONITOR_PASSWORD (Secret <stack>-postgres-monitor) when the store runs
# an exporter. The role may log in (three connections at most) and read the
# statistics views and settings (pg_monitor), nothing else: it owns nothing
# and is granted no table. A role of that name that is more than that (a
# superuser, a replication role, an owner of a database, a member of any
# other role, such as the apps' owner role) is refused, not changed. With
# metrics turned off, the default role can no longer log in.
# shellcheck disable=SC2069,SC2154
monitor_role() {
  if [ -z "${MONITOR_USER:-}" ]; then
    # Metrics turned off: the default monitoring role, if a plain one is
    # left, can no longer log in (its Secret is gone too).
    psql -q -h "$socket" -p "$port" -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 2>&1 >/dev/null <<'SQL'
SELECT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = 'appstack_monitor' AND r.rolcanlogin
  AND NOT r.rolsuper AND NOT r.rolreplication
  AND NOT EXISTS (SELECT FROM pg_database d WHERE d.datdba = r.oid)) AS left_over \gset
\if :left_over
ALTER ROLE appstack_monitor WITH NOLOGIN PASSWORD NULL;
\endif
SQL
    return
  fi
  case "$MONITOR_USER" in
    "$POSTGRES_USER"|"$APP_USER"|"${BACKUP_USER:-$POSTGRES_USER}"|appstack_bootstrap|pg_*)
      echo "the monitoring role may not be $MONITOR_USER (a role of the server's, the apps' or the backups'): change the username of Secret $APPSTACK_SECRET-monitor"
      return 1 ;;
  esac
  psql -q -h "$socket" -p "$port" -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 -v monitor="$MONITOR_USER" -v secret="$APPSTACK_SECRET" 2>&1 >/dev/null <<'SQL'
\getenv monitorpw MONITOR_PASSWORD
BEGIN;
SELECT set_config('appstack.monitor', :'monitor', true), set_config('appstack.secret', :'secret', true) \gset
DO $do$
DECLARE
  m text := current_setting('appstack.monitor');
BEGIN
  IF EXISTS (SELECT FROM pg_roles r WHERE r.rolname = m AND (r.rolsuper OR r.rolreplication
      OR r.rolbypassrls OR r.rolcreaterole
      OR EXISTS (SELECT FROM pg_database d WHERE d.datdba = r.oid)
      OR EXISTS (SELECT FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid
        WHERE a.member = r.oid AND g.rolname <> 'pg_monitor'))) THEN
    RAISE EXCEPTION 'role % is more than a monitoring role (a superuser, replication or database owner, or a member of another role): give Secret %-monitor another username', m, current_setting('appstack.secret');
  END IF;
END
$do$;
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'monitor') AS missing \gset
\if :missing
CREATE ROLE :"monitor";
\endif
ALTER ROLE :"monitor" WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3 PASSWORD :'monitorpw';
SELECT NOT pg_has_role(:'monitor', 'pg_monitor', 'MEMBER') AS grant_it \gset
\if :grant_it
GRANT pg_monitor TO :"monitor";
\endif
COMMIT;
SQL
}
