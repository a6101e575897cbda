package probe

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseStandbyNames(t *testing.T) {
	tests := []struct {
		give    string
		want    standbyNames
		wantOK  bool
		wantErr bool
	}{
		{give: "", wantOK: false},
		{give: "  ", wantOK: false},
		{give: "FIRST 1 (standby1)", want: standbyNames{"first", 1, []string{"standby1"}}, wantOK: true},
		{give: "ANY 1 (standby1, standby2)", want: standbyNames{"any", 1, []string{"standby1", "standby2"}}, wantOK: true},
		{give: "any 2(a,b,c)", want: standbyNames{"any", 2, []string{"a", "b", "c"}}, wantOK: true},
		{give: "2 (a, b)", want: standbyNames{"first", 2, []string{"a", "b"}}, wantOK: true},
		{give: "a, b", want: standbyNames{"first", 1, []string{"a", "b"}}, wantOK: true},
		{give: "*", want: standbyNames{"first", 1, []string{"*"}}, wantOK: true},
		{give: `FIRST 1 ("Stand, by", b)`, want: standbyNames{"first", 1, []string{"Stand, by", "b"}}, wantOK: true},
		{give: `"say ""hi"""`, want: standbyNames{"first", 1, []string{`say "hi"`}}, wantOK: true},
		// A standby named first.
		{give: "first, b", want: standbyNames{"first", 1, []string{"first", "b"}}, wantOK: true},
		{give: "FIRST 1 (a", wantErr: true},
		{give: "a,,b", wantErr: true},
		{give: `"a`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, ok, err := parseStandbyNames(tt.give)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if ok != tt.wantOK {
				t.Fatalf("ok %v, want %v", ok, tt.wantOK)
			}
			if ok && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSyncRepFrom(t *testing.T) {
	at := time.Unix(1000, 0)
	lag := func(f float64) *time.Duration { d := time.Duration(f * float64(time.Second)); return &d }
	prio := func(n int32) *int32 { return &n }
	row := func(app, state string, p int32, flush, replay float64) ReplicationRow {
		return ReplicationRow{ApplicationName: app, State: "streaming", SyncState: state, SyncPriority: prio(p), FlushLag: lag(flush), ReplayLag: lag(replay)}
	}
	both := ClassicPrimary{Replication: []ReplicationRow{row("standby1", "sync", 1, 0.002, 0.003), row("standby2", "async", 0, 0.001, 0.004)}}
	quorum := ClassicPrimary{Replication: []ReplicationRow{row("standby1", "quorum", 1, 0.002, 0.005), row("standby2", "quorum", 1, 0.001, 0.004)}}
	cut := ClassicPrimary{Replication: []ReplicationRow{row("standby2", "async", 0, 0.001, 0.004)}}
	tests := []struct {
		name          string
		names, commit string
		c             ClassicPrimary
		waiting       int64
		wantActive    bool
		wantWaitsFor  []string
		wantWait      *time.Duration
		wantBlocked   string // substring; "" means not blocked
	}{
		{name: "off", names: "", commit: "on", c: both, wantWaitsFor: []string{}, wantWait: lag(0)},
		{name: "local", names: "FIRST 1 (standby1)", commit: "local", c: both, wantWaitsFor: []string{}, wantWait: lag(0)},
		{name: "first on", names: "FIRST 1 (standby1)", commit: "on", c: both, wantActive: true, wantWaitsFor: []string{"standby1"}, wantWait: lag(0.002)},
		{name: "first remote_apply", names: "FIRST 1 (standby1)", commit: "remote_apply", c: both, wantActive: true, wantWaitsFor: []string{"standby1"}, wantWait: lag(0.003)},
		// ANY 1: the faster of the two is enough.
		{name: "any remote_apply", names: "ANY 1 (standby1, standby2)", commit: "remote_apply", c: quorum, wantActive: true, wantWaitsFor: []string{"standby1", "standby2"}, wantWait: lag(0.004)},
		{name: "any 2 on", names: "ANY 2 (standby1, standby2)", commit: "on", c: quorum, wantActive: true, wantWaitsFor: []string{"standby1", "standby2"}, wantWait: lag(0.002)},
		{name: "first cut", names: "FIRST 1 (standby1)", commit: "on", c: cut, waiting: 1, wantActive: true, wantWaitsFor: []string{"standby1"},
			wantBlocked: "commits wait for synchronous standby standby1 (FIRST 1 needs 1 streaming, 0 stream; not streaming: standby1)"},
		{name: "any cut both", names: "ANY 1 (standby1, standby3)", commit: "on", c: cut, waiting: 2, wantActive: true, wantWaitsFor: []string{"standby1", "standby3"},
			wantBlocked: "commits wait for synchronous standbys standby1, standby3"},
		{name: "star none streaming", names: "*", commit: "on", c: ClassicPrimary{}, waiting: 1, wantActive: true, wantWaitsFor: []string{"any standby (*)"},
			wantBlocked: "commits wait for synchronous standby any standby (*) (FIRST 1 needs 1 streaming, 0 stream"},
		{name: "slow sync standby", names: "FIRST 1 (standby1)", commit: "remote_apply", c: both, waiting: 1, wantActive: true, wantWaitsFor: []string{"standby1"}, wantWait: lag(0.003),
			wantBlocked: "commits wait for synchronous standby standby1: synchronous_standby_names = 'FIRST 1 (standby1)'"},
		{name: "hidden", names: "FIRST 1 (standby1)", commit: "on", c: ClassicPrimary{Hidden: "GRANT pg_monitor"}, waiting: 1, wantActive: true,
			wantBlocked: "which ones is hidden: GRANT pg_monitor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := syncRepFrom(at, tt.names, tt.commit, tt.c, tt.waiting, nil)
			if got.Active != tt.wantActive {
				t.Errorf("Active %v, want %v", got.Active, tt.wantActive)
			}
			if !reflect.DeepEqual(got.WaitsFor, tt.wantWaitsFor) {
				t.Errorf("WaitsFor %#v, want %#v", got.WaitsFor, tt.wantWaitsFor)
			}
			if (got.CommitWait == nil) != (tt.wantWait == nil) || got.CommitWait != nil && *got.CommitWait != *tt.wantWait {
				t.Errorf("CommitWait %v (%s), want %v", got.CommitWait, got.CommitWaitFrom, tt.wantWait)
			}
			if tt.wantBlocked == "" && got.Blocked != "" || !strings.Contains(got.Blocked, tt.wantBlocked) {
				t.Errorf("Blocked %q, want %q", got.Blocked, tt.wantBlocked)
			}
		})
	}
}

func TestSyncInfoFor(t *testing.T) {
	p1 := int32(1)
	c := &ClassicPrimary{Replication: []ReplicationRow{
		{ApplicationName: "standby1", SyncState: "sync", SyncPriority: &p1},
		{ApplicationName: "walreceiver"}, {ApplicationName: "walreceiver"},
	}}
	sr := &SyncRep{StandbyNames: "FIRST 1 (standby1, standby9)"}
	tests := []struct {
		give       string
		c          *ClassicPrimary
		wantState  string
		wantPrio   *int
		wantReason string
	}{
		{give: "standby1", c: c, wantState: "sync", wantPrio: new(1)},
		{give: "STANDBY1", c: c, wantState: "sync", wantPrio: new(1)},
		{give: "standby9", c: c, wantState: SyncUnknown, wantReason: "listed in synchronous_standby_names but not connected"},
		{give: "other", c: c, wantState: SyncUnknown, wantReason: "not streaming from it, or its primary_conninfo lacks application_name=other"},
		{give: "walreceiver", c: c, wantState: SyncUnknown, wantReason: "2 pg_stat_replication rows"},
		{give: "standby1", c: &ClassicPrimary{Hidden: "GRANT pg_monitor TO walprobe"}, wantState: SyncUnknown, wantReason: "GRANT pg_monitor TO walprobe"},
		{give: "standby1", c: nil, wantState: SyncUnknown, wantReason: "not been read yet"},
	}
	for _, tt := range tests {
		got := syncInfoFor(tt.give, tt.c, sr)
		if got.State != tt.wantState || !reflect.DeepEqual(got.Priority, tt.wantPrio) || !strings.Contains(got.Reason, tt.wantReason) {
			t.Errorf("%s: got %+v (priority %v), want %s, %v, reason with %q", tt.give, got, got.Priority, tt.wantState, tt.wantPrio, tt.wantReason)
		}
		if got.Known() != (tt.wantState != SyncUnknown) {
			t.Errorf("%s: Known() = %v", tt.give, got.Known())
		}
	}
}

// The commit wait is the median of recent samples under one setting: one
// lag-tracker sample that no commit waited for does not show, a read
// without a sample keeps the recent ones, and new settings start afresh.
func TestSmoothCommitWait(t *testing.T) {
	w := &PrimaryWatcher{}
	read := func(names, commit string, v *time.Duration) *time.Duration {
		s := SyncRep{StandbyNames: names, SynchronousCommit: commit, Active: names != "", CommitWait: v}
		w.smoothCommitWait(&s)
		return s.CommitWait
	}
	sec := func(f float64) *time.Duration { d := time.Duration(f * float64(time.Second)); return &d }
	for _, v := range []float64{0.0005, 0.0004, 0.0068, 0.0005} {
		read("FIRST 1 (a)", "on", sec(v))
	}
	if got := read("FIRST 1 (a)", "on", sec(0.0006)); got == nil || *got != *sec(0.0005) {
		t.Errorf("median of 0.5, 0.4, 6.8, 0.5, 0.6 ms = %v, want 0.5 ms", got)
	}
	if got := read("FIRST 1 (a)", "on", nil); got == nil || *got != *sec(0.0005) {
		t.Errorf("a read without a sample = %v, want the recent median 0.5 ms", got)
	}
	if got := read("FIRST 1 (a)", "remote_apply", nil); got != nil {
		t.Errorf("new settings, no sample yet = %v, want unknown", *got)
	}
	if got := read("", "on", sec(0)); got == nil || *got != 0 {
		t.Errorf("commits do not wait = %v, want 0", got)
	}
}
