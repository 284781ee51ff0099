#!/bin/sh
# The official postgres image's start, for Debian's PostgreSQL (postgres.Dockerfile):
# on an empty data folder, initdb with POSTGRES_USER/POSTGRES_PASSWORD, create POSTGRES_DB
# and run /docker-entrypoint-initdb.d/*.sql; then the server, on every interface of the
# container's network, password (SCRAM) authentication for TCP connections.
set -eu
: "${POSTGRES_USER:?}" "${POSTGRES_PASSWORD:?}"
db=${POSTGRES_DB:-$POSTGRES_USER}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$db" != postgres ]; then
        psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q -c "CREATE DATABASE \"$db\""
    fi
    for f in /docker-entrypoint-initdb.d/*.sql; do
        [ -e "$f" ] && psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$db" -q -f "$f"
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "postgres-entrypoint: initialised $PGDATA (databases: $db and the init scripts')"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
