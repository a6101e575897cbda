package probe

import (
	"math"
	"time"
)

// durationPtr returns a pointer to d: a measured duration, where nil is
// one not known.
func durationPtr(d time.Duration) *time.Duration { return &d }

// fromSeconds turns seconds as PostgreSQL reports them (extract(epoch
// FROM …), microseconds) into a Duration, rounded to the nanosecond.
func fromSeconds(f float64) time.Duration { return time.Duration(math.Round(f * float64(time.Second))) }

// Classic holds the numbers other tools report, collected at the same
// moments as walprobe's own, so a user can compare. Every field is nil
// when the server returned NULL or the role may not see it: unknown is
// never 0.
type Classic struct {
	At time.Time
	// Standby.
	InRecovery *bool
	// now() - pg_last_xact_replay_timestamp(): grows while the primary idles,
	// NULL on a fresh standby.
	ReplayTimestampAge *time.Duration
	// The exporter-style query: 0 when receive = replay LSN, which is also
	// what it reads while the WAL receiver is cut off.
	ExporterLag *time.Duration
	// pg_last_wal_receive_lsn() - pg_last_wal_replay_lsn() in bytes.
	ReceiveReplayGapBytes *int64
	// pg_stat_wal_receiver.status, empty when no receiver runs.
	ReceiverStatus *string
	// Subscriber: pg_stat_subscription ages, before now().
	SubscriptionReceiptAge *time.Duration
	SubscriptionSendAge    *time.Duration
	SubscriptionEndAge     *time.Duration
	SubscriptionWorkers    *int64
	Error                  string
}

// ClassicPrimary is what the primary says about its consumers.
type ClassicPrimary struct {
	At time.Time
	// Replication holds pg_stat_replication rows; empty with Hidden set
	// when the role cannot see them (no pg_monitor, as on managed services).
	Replication []ReplicationRow
	Hidden      string
	Slots       []SlotRow
}

// ReplicationRow is one pg_stat_replication row.
type ReplicationRow struct {
	ApplicationName string
	ClientAddr      string
	// PID is the walsender's; two standbys with one application_name on
	// one host (both `walreceiver`, the pg_basebackup -R default) differ
	// only by it and BackendStart.
	PID          int32
	BackendStart *time.Time
	// SlotName is the slot the walsender uses, if any.
	SlotName string
	// AsOf is when the standby sent the positions below (reply_time), by
	// the probe's clock; nil before its first status message.
	AsOf      *time.Time
	State     string
	SentLSN   string
	WriteLSN  string
	FlushLSN  string
	ReplayLSN string
	// SyncState and SyncPriority are pg_stat_replication's: sync,
	// quorum, potential or async, and the standby's priority in
	// synchronous_standby_names (0: async); empty and nil when hidden.
	SyncState    string
	SyncPriority *int32
	WriteLag     *time.Duration
	FlushLag     *time.Duration
	ReplayLag    *time.Duration
}

// SetPrimaryClassic records the primary's classic view.
func (p *Probe) SetPrimaryClassic(c ClassicPrimary) {
	p.mu.Lock()
	p.primaryClassic = &c
	p.mu.Unlock()
}
