#!/bin/sh
set -e
psql -v ON_ERROR_STOP=1 -U postgres -c "CREATE ROLE walprobe LOGIN PASSWORD 'walprobe'; GRANT pg_monitor TO walprobe;"
