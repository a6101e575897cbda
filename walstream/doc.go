// Package walstream times every beat on the primary's logical replication
// stream.
//
// A [Stream] opens a replication connection (replication=database) to the
// primary, creates a TEMPORARY logical slot with the pgoutput plugin on the
// heartbeat publication and decodes what arrives. For each committed
// transaction that carries this probe's heartbeat row it reports an exact
// observation of the beat's seq to its [Target] (the moment the XLogData
// was read, so the error bound is 0) and splits the trip into commit →
// server sent → received ([heartbeat.StreamStages]).
//
// Standby status updates confirm what was received right after every beat
// and at least every [Config.StatusInterval], so the slot holds back no more
// than a few beats of WAL. The slot is temporary: the server drops it when
// the walsender ends, so a crashed probe leaks nothing.
//
// The package does not write beats (see heartbeat.Writer), does not keep
// history (the probe's ring does) and never creates the publication: a
// missing one is reported with the SQL to run. Beats written while the
// stream was reconnecting are not on the new slot; the probe's lag for the
// target keeps growing meanwhile and those beats are never timed here.
//
// walstream imports heartbeat and heartbeat/pgconf only. It must not import
// probe: it declares the [Target] it needs, and *probe.Target satisfies
// it (test/lint enforces this).
package walstream
