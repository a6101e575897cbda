// Package heartbeat writes timestamped beats to the primary and remembers
// them long enough to time their arrival elsewhere.
//
// A [Writer] upserts one row per probe_id into walprobe.heartbeat every
// interval. The row's seq is assigned by the database (one past the larger
// of the row's seq and the last one this writer acked), so it stays
// monotonic across probe restarts and failovers. Each successful upsert yields a
// [Beat]: seq, the probe's monotonic sent/acked times, the WAL position of
// the write and the primary's clock at the write.
//
// Two probes run with the same probe_id against one primary share the row
// and make each other's seq jump. The writer notices a jump on an unbroken
// connection and reports it through WriterConfig.OnConflict as a
// [*ProbeIDConflictError] naming --probe-id; it does not stop writing.
//
// The table stays bounded: one row per probe, updated in place (HOT, the
// primary key never changes, fillfactor leaves room on the page), so its heap
// is one or two pages however long the probe runs. History lives in the
// probe, not in the table: [Ring] keeps recent beats with a fixed capacity
// and maps any LSN a server reports to the time the primary's WAL passed it.
//
// Schema, publication and grants are produced by [SetupSQL]; `walprobe setup`
// applies or prints them. At start-up [Check] creates the schema and table
// ([TableSQL]; never the publication or grants) when the table is missing
// and the role may; otherwise it reports the SQL an administrator must
// run. Nothing is created after start-up.
//
// heartbeat is the bottom of the tree: it imports only its leaf
// heartbeat/pgconf (connection policy), never probe, walstream or a sink.
// Plain data about a beat that several layers pass around ([Beat],
// [StreamStages]) lives here for that reason (test/lint enforces this).
package heartbeat
