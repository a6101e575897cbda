// Package probe turns beats and polls into per-target truth: when each beat
// became visible on each target (with an error bound), each target's
// current lag, and each target's state.
//
// [Probe] is the hub. The heartbeat writer feeds it beats; one [Reader] per
// target (standby, subscriber, endpoint) and the walstream client report
// what each target has shown through a [Target] handle. Observers (the
// sinks) receive every visibility, transition and classic sample; the
// HTTP API and metric callbacks read [Probe.Snapshot].
//
// The true numbers never come from pg_last_xact_replay_timestamp(): they
// are the probe's own monotonic clock at write and at first sight. The
// classic numbers are collected beside them, labelled classic, so a user
// can see where they lie.
//
// probe imports heartbeat and heartbeat/pgconf only. The sinks sit above
// it (they read snapshots and implement [Observer]); walstream sits beside
// it and reports through an interface of its own that [*Target] satisfies,
// so neither imports the other (test/lint enforces this).
package probe
