-- walprobe setup: run as a role that may create schemas and publications.
-- The probe role needs LOGIN; REPLICATION for the logical stream:
--   ALTER ROLE "walprobe" LOGIN REPLICATION;
-- Optional, for the classic numbers (pg_stat_replication details):
--   GRANT pg_monitor TO "walprobe";
CREATE SCHEMA IF NOT EXISTS walprobe;
CREATE TABLE IF NOT EXISTS walprobe.heartbeat (
    probe_id   text PRIMARY KEY,
    seq        bigint NOT NULL,
    written_at timestamptz NOT NULL
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'walprobe_heartbeat') THEN
        CREATE PUBLICATION walprobe_heartbeat FOR TABLE walprobe.heartbeat;
    END IF;
END $$;
GRANT USAGE ON SCHEMA walprobe TO "walprobe";
GRANT SELECT, INSERT, UPDATE ON walprobe.heartbeat TO "walprobe";
