#!/bin/bash
# Entrypoint of appstack.local/postgres:15 and :17, following the official postgres image's
# documented contract:
#   POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
#   POSTGRES_USER (default postgres), POSTGRES_DB (default: the user),
#   PGDATA (default /var/lib/postgresql/data), POSTGRES_INITDB_ARGS,
#   POSTGRES_INITDB_WALDIR, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256),
#   each also as <NAME>_FILE; /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz run once.
# An empty PGDATA is initialised (initdb, then a socket-only temporary server creates
# the database and runs the init scripts); a populated one is started as it is.
# Started as root it fixes ownership and drops to postgres (uid 999); as uid 999 it
# just runs. The last step execs the server, so it is the container's PID 1.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# file_env VAR [DEFAULT]: VAR from itself, or from the file named by VAR_FILE.
file_env() {
  local var=$1 fvar="${1}_FILE" val=${2:-}
  if [[ -n ${!var:-} && -n ${!fvar:-} ]]; then
    die "both $var and $fvar are set (but they are exclusive)"
  fi
  if [[ -n ${!var:-} ]]; then
    val=${!var}
  elif [[ -n ${!fvar:-} ]]; then
    val=$(<"${!fvar}")
  fi
  export "$var=$val"
  unset "$fvar"
}

# Options that only print something must not touch PGDATA.
wants_help() {
  local a
  for a in "$@"; do
    case $a in -'?' | --help | --describe-config | -V | --version | -C | -C*) return 0 ;; esac
  done
  return 1
}

setup_env() {
  export PGDATA=${PGDATA:-/var/lib/postgresql/data}
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  export POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
}

create_dirs() {
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA" || :
  mkdir -p /var/run/postgresql || :
  chmod 3775 /var/run/postgresql || :
  if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
    mkdir -p "$POSTGRES_INITDB_WALDIR"
    chmod 0700 "$POSTGRES_INITDB_WALDIR" || :
  fi
  if [[ $(id -u) == 0 ]]; then
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    find /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
    if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
      find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres:postgres '{}' +
    fi
  fi
}

verify_env() {
  if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
    die "the database is uninitialized and POSTGRES_PASSWORD is not set.
  Set POSTGRES_PASSWORD to a non-empty value for the superuser ($POSTGRES_USER),
  or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without a password (not recommended)."
  fi
  if [[ $POSTGRES_HOST_AUTH_METHOD == trust ]]; then
    log "warning: POSTGRES_HOST_AUTH_METHOD=trust: anyone who can reach the port connects without a password"
  fi
}

init_database_dir() {
  local args=(--username="$POSTGRES_USER" --auth-local=trust) extra=()
  [[ -n ${POSTGRES_INITDB_WALDIR:-} ]] && args+=(--waldir="$POSTGRES_INITDB_WALDIR")
  # Word-split like the official image: space-separated initdb options.
  read -r -a extra <<<"$POSTGRES_INITDB_ARGS"
  if [[ -n $POSTGRES_PASSWORD ]]; then
    # The password reaches initdb through a pipe, never a file or the command line.
    initdb "${args[@]}" --auth-host="$POSTGRES_HOST_AUTH_METHOD" \
      --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${extra[@]}"
  else
    initdb "${args[@]}" --auth-host=trust "${extra[@]}"
  fi
  # Every other address may connect with the password (initdb covered loopback).
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
}

temp_server_start() { # socket only, so nothing connects before initialisation is done
  PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -w -o "$(printf '%q ' "$@" -c listen_addresses= -p "${PGPORT:-5432}")" start
}

temp_server_stop() {
  PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -m fast -w stop
}

psql_init() {
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
}

create_database() {
  [[ $POSTGRES_DB == postgres ]] && return 0
  psql_init --dbname postgres --set db="$POSTGRES_DB" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
}

run_init_files() {
  local f
  shopt -s nullglob
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh)
        # shellcheck disable=SC1090 # the user's scripts
        if [[ -x $f ]]; then log "running $f"; "$f"; else log "sourcing $f"; . "$f"; fi
        ;;
      *.sql) log "running $f"; psql_init --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | psql_init --dbname "$POSTGRES_DB" ;;
      *) log "ignoring $f" ;;
    esac
  done
  shopt -u nullglob
}

main() {
  if [[ ${1:-} == -* ]]; then
    set -- postgres "$@"
  fi
  if [[ ${1:-} != postgres ]] || wants_help "$@"; then
    exec "$@"
  fi

  setup_env
  create_dirs
  if [[ $(id -u) == 0 ]]; then
    export HOME=/var/lib/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
  fi

  if [[ -s $PGDATA/PG_VERSION ]]; then
    log "PGDATA $PGDATA holds a database already: skipping initialisation"
  else
    verify_env
    log "initialising a new database in $PGDATA"
    init_database_dir
    export PGPASSWORD=$POSTGRES_PASSWORD
    temp_server_start "${@:2}"
    create_database
    run_init_files
    temp_server_stop
    unset PGPASSWORD
    log "initialisation done; starting postgres"
  fi
  exec "$@"
}

main "$@"
