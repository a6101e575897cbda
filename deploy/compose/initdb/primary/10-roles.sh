#!/bin/sh
# Runs once, from docker-entrypoint-initdb.d, before 20-walprobe-setup.sql.
# Demo passwords only: this stack is for trying walprobe locally.
set -e
psql -v ON_ERROR_STOP=1 -U postgres <<SQL
CREATE ROLE walprobe LOGIN REPLICATION PASSWORD 'walprobe';
GRANT pg_monitor TO walprobe;
CREATE ROLE replicator LOGIN REPLICATION PASSWORD 'replicator';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
