package api

import (
	"maps"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink"
)

// The JSON shapes of GET /v1/state. The probe's snapshot is the domain
// (durations, nil for unknown); these are the wire format, with float
// seconds and the field names dashboards and scripts parse. They must stay
// byte-compatible: testdata/state.golden.json pins them.

// State is the body of GET /v1/state.
type State struct {
	ProbeID     string       `json:"probe_id"`
	At          time.Time    `json:"at"`
	Interval    sink.Seconds `json:"interval_seconds"`
	Beats       int64        `json:"beats"`
	BeatsMissed int64        `json:"beats_missed"`
	LastBeat    *Beat        `json:"last_beat,omitempty"`
	Primary     Primary      `json:"primary"`
	Targets     []Target     `json:"targets"`
	LSNLags     []LSNLag     `json:"lsn_lags"`
}

// Primary describes the writer's side.
type Primary struct {
	Up      bool            `json:"up"`
	Error   string          `json:"error,omitempty"`
	Classic *ClassicPrimary `json:"classic,omitempty"`
	Sync    *SyncRep        `json:"sync,omitempty"`
}

// SyncRep is the primary's synchronous replication (probe.SyncRep).
type SyncRep struct {
	At                time.Time `json:"at"`
	SynchronousCommit string    `json:"synchronous_commit"`
	StandbyNames      string    `json:"synchronous_standby_names"`
	Method            string    `json:"method,omitempty"`
	Num               int       `json:"num_sync,omitempty"`
	Listed            []string  `json:"listed,omitempty"`
	Active            bool      `json:"active"`
	// WaitsFor is null while pg_stat_replication is hidden.
	WaitsFor       []string      `json:"commit_waits_for"`
	CommitWait     *sink.Seconds `json:"commit_wait_seconds"`
	CommitWaitFrom string        `json:"commit_wait_from,omitempty"`
	Waiting        int64         `json:"commits_waiting"`
	OldestWait     *sink.Seconds `json:"oldest_commit_wait_seconds,omitempty"`
	Blocked        string        `json:"blocked,omitempty"`
	Hidden         string        `json:"hidden,omitempty"`
}

// Sync is a standby's place in synchronous replication; its fields sit
// on the target's object, for standbys only.
type Sync struct {
	State string `json:"sync_state"`
	// Priority is null while State is unknown.
	Priority *int   `json:"sync_priority"`
	Reason   string `json:"sync_reason,omitempty"`
}

// Beat is the newest acked beat.
type Beat struct {
	Seq         int64        `json:"seq"`
	Sent        time.Time    `json:"sent"`
	Acked       time.Time    `json:"acked"`
	LSN         string       `json:"lsn"`
	PrimaryTime time.Time    `json:"primary_time"`
	WriteRTT    sink.Seconds `json:"write_rtt_seconds"`
}

// Target is one target.
type Target struct {
	Name        string        `json:"name"`
	Kind        probe.Kind    `json:"kind"`
	State       probe.State   `json:"state"`
	StateSince  time.Time     `json:"state_since"`
	StateReason string        `json:"state_reason,omitempty"`
	Lag         *sink.Seconds `json:"lag_seconds"`
	// LagUpperBound is set while the lag is unknown (state unknown).
	LagUpperBound *sink.Seconds              `json:"lag_upper_bound_seconds,omitempty"`
	Delay         *sink.Seconds              `json:"delay_seconds"`
	ErrorBound    *sink.Seconds              `json:"error_bound_seconds"`
	LastSeq       *int64                     `json:"last_seen_seq"`
	BeatsTimed    int64                      `json:"beats_timed"`
	LastError     string                     `json:"last_error,omitempty"`
	Classic       *Classic                   `json:"classic"`
	Dropped       map[probe.DropReason]int64 `json:"observations_dropped,omitempty"`
	BeatsLost     int64                      `json:"beats_lost"`
	// Backends lists the servers behind a read endpoint (at most 16),
	// worst lag first; absent for other kinds.
	Backends []Backend `json:"backends,omitempty"`
	// Sync (standbys only) adds sync_state, sync_priority, sync_reason.
	*Sync
}

// Backend is one server behind a read endpoint.
type Backend struct {
	Server     string        `json:"server"`
	State      probe.State   `json:"state"`
	Lag        *sink.Seconds `json:"lag_seconds"`
	LastSeq    *int64        `json:"last_seen_seq"`
	LastAnswer time.Time     `json:"last_answer"`
	// Recent: it answered within max(10 s, 10 intervals), so it counts
	// in the endpoint's lag.
	Recent bool `json:"recent"`
}

// Classic is a target's classic numbers.
type Classic struct {
	At                     time.Time     `json:"at"`
	InRecovery             *bool         `json:"in_recovery,omitempty"`
	ReplayTimestampAge     *sink.Seconds `json:"replay_timestamp_age_seconds"`
	ExporterLag            *sink.Seconds `json:"exporter_lag_seconds"`
	ReceiveReplayGapBytes  *int64        `json:"receive_replay_gap_bytes"`
	ReceiverStatus         *string       `json:"wal_receiver_status,omitempty"`
	SubscriptionReceiptAge *sink.Seconds `json:"subscription_last_msg_receipt_age_seconds,omitempty"`
	SubscriptionSendAge    *sink.Seconds `json:"subscription_last_msg_send_age_seconds,omitempty"`
	SubscriptionEndAge     *sink.Seconds `json:"subscription_latest_end_age_seconds,omitempty"`
	SubscriptionWorkers    *int64        `json:"subscription_workers,omitempty"`
	Error                  string        `json:"error,omitempty"`
}

// ClassicPrimary is what the primary says about its consumers.
type ClassicPrimary struct {
	At          time.Time        `json:"at"`
	Replication []ReplicationRow `json:"replication"`
	Hidden      string           `json:"hidden,omitempty"`
	Slots       []SlotRow        `json:"slots"`
}

// ReplicationRow is one pg_stat_replication row.
type ReplicationRow struct {
	ApplicationName string        `json:"application_name"`
	ClientAddr      string        `json:"client_addr,omitempty"`
	PID             int32         `json:"pid"`
	BackendStart    *time.Time    `json:"backend_start,omitempty"`
	SlotName        string        `json:"slot_name,omitempty"`
	AsOf            *time.Time    `json:"as_of"`
	State           string        `json:"state"`
	SentLSN         string        `json:"sent_lsn,omitempty"`
	WriteLSN        string        `json:"write_lsn,omitempty"`
	FlushLSN        string        `json:"flush_lsn,omitempty"`
	ReplayLSN       string        `json:"replay_lsn,omitempty"`
	SyncState       string        `json:"sync_state,omitempty"`
	SyncPriority    *int32        `json:"sync_priority,omitempty"`
	WriteLag        *sink.Seconds `json:"write_lag_seconds"`
	FlushLag        *sink.Seconds `json:"flush_lag_seconds"`
	ReplayLag       *sink.Seconds `json:"replay_lag_seconds"`
}

// SlotRow is one pg_replication_slots row.
type SlotRow struct {
	SlotName          string    `json:"slot_name"`
	SlotType          string    `json:"slot_type"`
	Active            bool      `json:"active"`
	ConfirmedFlushLSN string    `json:"confirmed_flush_lsn,omitempty"`
	RestartLSN        string    `json:"restart_lsn,omitempty"`
	ActivePID         *int32    `json:"active_pid,omitempty"`
	AsOf              time.Time `json:"as_of"`
	AsOfSource        string    `json:"as_of_source"`
}

// LSNLag is a time lag derived from a position a consumer reported to the
// primary (derived_from: lsn).
type LSNLag struct {
	Consumer        string        `json:"consumer"`
	Kind            string        `json:"kind"`
	LSNName         string        `json:"lsn"`
	LSN             string        `json:"position"`
	Lag             *sink.Seconds `json:"lag_seconds"`
	Derived         string        `json:"derived_from"`
	AsOf            *time.Time    `json:"as_of"`
	AsOfSource      string        `json:"as_of_source,omitempty"`
	PositionAge     *sink.Seconds `json:"position_age_seconds"`
	ApplicationName string        `json:"application_name,omitempty"`
	ClientAddr      string        `json:"client_addr,omitempty"`
	PID             int32         `json:"pid,omitempty"`
}

// toState turns a probe snapshot into the /v1/state body.
func toState(s probe.Snapshot) State {
	out := State{
		ProbeID: s.ProbeID, At: s.At, Interval: sink.SecondsOf(s.Interval),
		Beats: s.Beats, BeatsMissed: s.BeatsMissed,
		Primary: Primary{Up: s.Primary.Up, Error: s.Primary.Error, Classic: toClassicPrimary(s.Primary.Classic), Sync: toSyncRep(s.Primary.Sync)},
	}
	if b := s.LastBeat; b != nil {
		out.LastBeat = &Beat{Seq: b.Seq, Sent: b.Sent, Acked: b.Acked, LSN: b.LSN.String(), PrimaryTime: b.PrimaryTime, WriteRTT: sink.SecondsOf(b.RTT())}
	}
	for _, t := range s.Targets {
		out.Targets = append(out.Targets, toTarget(t))
	}
	for _, l := range s.LSNLags {
		out.LSNLags = append(out.LSNLags, LSNLag{
			Consumer: l.Consumer, Kind: l.Kind, LSNName: l.LSNName, LSN: l.LSN, Lag: sink.SecondsPtr(l.Lag),
			Derived: l.Derived, AsOf: l.AsOf, AsOfSource: l.AsOfSource, PositionAge: sink.SecondsPtr(l.PositionAge),
			ApplicationName: l.ApplicationName, ClientAddr: l.ClientAddr, PID: l.PID,
		})
	}
	return out
}

// toTarget turns one target snapshot into its /v1/state entry.
func toTarget(t probe.TargetSnapshot) Target {
	out := Target{
		Name: t.Name, Kind: t.Kind, State: t.State, StateSince: t.StateSince, StateReason: t.StateReason,
		Lag: sink.SecondsPtr(t.Lag), LagUpperBound: sink.SecondsPtr(t.LagUpperBound), Delay: sink.SecondsPtr(t.Delay), ErrorBound: sink.SecondsPtr(t.ErrorBound),
		LastSeq: t.LastSeq, BeatsTimed: t.BeatsTimed, LastError: t.LastError, BeatsLost: t.BeatsLost,
	}
	if len(t.Dropped) > 0 {
		out.Dropped = maps.Clone(t.Dropped)
	}
	if sy := t.Sync; sy != nil {
		out.Sync = &Sync{State: sy.State, Priority: sy.Priority, Reason: sy.Reason}
	}
	for _, b := range t.Backends {
		out.Backends = append(out.Backends, Backend{Server: b.Server, State: b.State, Lag: sink.SecondsPtr(b.Lag),
			LastSeq: b.LastSeq, LastAnswer: b.LastAnswer, Recent: b.Recent})
	}
	if c := t.Classic; c != nil {
		out.Classic = &Classic{
			At: c.At, InRecovery: c.InRecovery,
			ReplayTimestampAge: sink.SecondsPtr(c.ReplayTimestampAge), ExporterLag: sink.SecondsPtr(c.ExporterLag),
			ReceiveReplayGapBytes: c.ReceiveReplayGapBytes, ReceiverStatus: c.ReceiverStatus,
			SubscriptionReceiptAge: sink.SecondsPtr(c.SubscriptionReceiptAge),
			SubscriptionSendAge:    sink.SecondsPtr(c.SubscriptionSendAge),
			SubscriptionEndAge:     sink.SecondsPtr(c.SubscriptionEndAge),
			SubscriptionWorkers:    c.SubscriptionWorkers, Error: c.Error,
		}
	}
	return out
}

func toClassicPrimary(c *probe.ClassicPrimary) *ClassicPrimary {
	if c == nil {
		return nil
	}
	out := &ClassicPrimary{At: c.At, Hidden: c.Hidden}
	if c.Replication != nil {
		out.Replication = make([]ReplicationRow, 0, len(c.Replication))
	}
	for _, r := range c.Replication {
		out.Replication = append(out.Replication, ReplicationRow{
			ApplicationName: r.ApplicationName, ClientAddr: r.ClientAddr, PID: r.PID, BackendStart: r.BackendStart,
			SlotName: r.SlotName, AsOf: r.AsOf, State: r.State,
			SentLSN: r.SentLSN, WriteLSN: r.WriteLSN, FlushLSN: r.FlushLSN, ReplayLSN: r.ReplayLSN,
			SyncState: r.SyncState, SyncPriority: r.SyncPriority,
			WriteLag: sink.SecondsPtr(r.WriteLag), FlushLag: sink.SecondsPtr(r.FlushLag), ReplayLag: sink.SecondsPtr(r.ReplayLag),
		})
	}
	if c.Slots != nil {
		out.Slots = make([]SlotRow, 0, len(c.Slots))
	}
	for _, s := range c.Slots {
		out.Slots = append(out.Slots, SlotRow{
			SlotName: s.SlotName, SlotType: s.SlotType, Active: s.Active,
			ConfirmedFlushLSN: s.ConfirmedFlushLSN, RestartLSN: s.RestartLSN, ActivePID: s.ActivePID,
			AsOf: s.AsOf, AsOfSource: s.AsOfSource,
		})
	}
	return out
}

func toSyncRep(s *probe.SyncRep) *SyncRep {
	if s == nil {
		return nil
	}
	return &SyncRep{
		At: s.At, SynchronousCommit: s.SynchronousCommit, StandbyNames: s.StandbyNames,
		Method: s.Method, Num: s.Num, Listed: s.Listed, Active: s.Active, WaitsFor: s.WaitsFor,
		CommitWait: sink.SecondsPtr(s.CommitWait), CommitWaitFrom: s.CommitWaitFrom,
		Waiting: s.Waiting, OldestWait: sink.SecondsPtr(s.OldestWait), Blocked: s.Blocked, Hidden: s.Hidden,
	}
}
