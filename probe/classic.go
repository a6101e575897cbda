package probe

import (
	"strconv"
	"time"
)

// Seconds is a duration in seconds as JSON shows it.
type Seconds float64

func secs(d time.Duration) *Seconds {
	s := Seconds(d.Seconds())
	return &s
}

// MarshalJSON keeps microsecond precision and never prints exponents.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(s), 'f', 6, 64), nil
}

// Classic holds the numbers other tools report, collected at the same
// moments as walprobe's own, so a user can compare. Every field is nil
// when the server returned NULL or the role may not see it: unknown is
// never 0.
type Classic struct {
	At time.Time `json:"at"`
	// Standby.
	InRecovery *bool `json:"in_recovery,omitempty"`
	// now() - pg_last_xact_replay_timestamp(): grows while the primary idles,
	// NULL on a fresh standby.
	ReplayTimestampAge *Seconds `json:"replay_timestamp_age_seconds"`
	// The exporter-style query: 0 when receive = replay LSN, which is also
	// what it reads while the WAL receiver is cut off.
	ExporterLag *Seconds `json:"exporter_lag_seconds"`
	// pg_last_wal_receive_lsn() - pg_last_wal_replay_lsn() in bytes.
	ReceiveReplayGapBytes *int64 `json:"receive_replay_gap_bytes"`
	// pg_stat_wal_receiver.status, empty when no receiver runs.
	ReceiverStatus *string `json:"wal_receiver_status,omitempty"`
	// Subscriber: pg_stat_subscription ages, seconds before now().
	SubscriptionReceiptAge *Seconds `json:"subscription_last_msg_receipt_age_seconds,omitempty"`
	SubscriptionSendAge    *Seconds `json:"subscription_last_msg_send_age_seconds,omitempty"`
	SubscriptionEndAge     *Seconds `json:"subscription_latest_end_age_seconds,omitempty"`
	SubscriptionWorkers    *int64   `json:"subscription_workers,omitempty"`
	Error                  string   `json:"error,omitempty"`
}

// ClassicPrimary is what the primary says about its consumers.
type ClassicPrimary struct {
	At time.Time `json:"at"`
	// Replication holds pg_stat_replication rows; empty with Hidden set
	// when the role cannot see them (no pg_monitor, as on managed services).
	Replication []ReplicationRow `json:"replication"`
	Hidden      string           `json:"hidden,omitempty"`
	Slots       []SlotRow        `json:"slots"`
}

// ReplicationRow is one pg_stat_replication row.
type ReplicationRow struct {
	ApplicationName string `json:"application_name"`
	ClientAddr      string `json:"client_addr,omitempty"`
	// PID is the walsender's; two standbys with one application_name on
	// one host (both `walreceiver`, the pg_basebackup -R default) differ
	// only by it and BackendStart.
	PID          int32      `json:"pid"`
	BackendStart *time.Time `json:"backend_start,omitempty"`
	// SlotName is the slot the walsender uses, if any.
	SlotName string `json:"slot_name,omitempty"`
	// AsOf is when the standby sent the positions below (reply_time), by
	// the probe's clock; nil before its first status message.
	AsOf      *time.Time `json:"as_of"`
	State     string     `json:"state"`
	SentLSN   string     `json:"sent_lsn,omitempty"`
	WriteLSN  string     `json:"write_lsn,omitempty"`
	FlushLSN  string     `json:"flush_lsn,omitempty"`
	ReplayLSN string     `json:"replay_lsn,omitempty"`
	// SyncState and SyncPriority are pg_stat_replication's: sync,
	// quorum, potential or async, and the standby's priority in
	// synchronous_standby_names (0: async).
	SyncState    string   `json:"sync_state,omitempty"`
	SyncPriority *int32   `json:"sync_priority,omitempty"`
	WriteLag     *Seconds `json:"write_lag_seconds"`
	FlushLag     *Seconds `json:"flush_lag_seconds"`
	ReplayLag    *Seconds `json:"replay_lag_seconds"`
}

// SetPrimaryClassic records the primary's classic view.
func (p *Probe) SetPrimaryClassic(c ClassicPrimary) {
	p.mu.Lock()
	p.primaryClassic = &c
	p.mu.Unlock()
}
