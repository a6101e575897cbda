#!/bin/sh
# Entrypoint of the standby services: clone the primary once, then run as
# a streaming standby. APPLY_DELAY sets recovery_min_apply_delay.
set -e
export PGDATA=/var/lib/postgresql/data
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_isready -h primary -U postgres; do sleep 1; done
    PGPASSWORD=replicator pg_basebackup -h primary -U replicator -D "$PGDATA" -R -X stream -c fast
    echo "recovery_min_apply_delay = '${APPLY_DELAY:-0}'" >> "$PGDATA/postgresql.auto.conf"
    echo "primary_conninfo = 'host=primary user=replicator password=replicator application_name=${HOSTNAME}'" >> "$PGDATA/postgresql.auto.conf"
    chown -R postgres:postgres "$PGDATA"
    chmod 0700 "$PGDATA"
fi
exec gosu postgres postgres -c hot_standby=on
