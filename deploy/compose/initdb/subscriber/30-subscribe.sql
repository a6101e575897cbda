-- Subscribe to the heartbeat publication 20-walprobe-setup.sql created on
-- the primary (the table itself comes from the --subscriber-only setup).
CREATE SUBSCRIPTION walprobe_sub
    CONNECTION 'host=primary dbname=postgres user=postgres password=postgres'
    PUBLICATION walprobe_heartbeat;
