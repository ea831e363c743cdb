until PGCONNECT_TIMEOUT=2 psql -Atqc 'select 1' >/dev/null 2>&1; do echo "waiting for postgres at $PGHOST to accept $PGUSER on $PGDATABASE"; sleep 1; done
