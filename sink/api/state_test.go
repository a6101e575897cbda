package api

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// goldenProbe drives a probe on a fake clock through every field
// /v1/state has: a primary with classic rows and slots (so LSN lags, one
// not yet reported), beats missed and lost in a failover, a standby timed
// with classic numbers, a subscriber that dropped an observation that
// cannot be true, an endpoint never polled (nulls), a target down, and one
// whose lag is unknown while the writer cannot write.
func goldenProbe(t *testing.T) *probe.Probe {
	t.Helper()
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	now := t0
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	p := probe.NewForTest(probe.Config{ProbeID: "golden", Interval: time.Second}, slog.New(slog.DiscardHandler), func() time.Time { return now })
	reg := func(name string, kind probe.Kind) *probe.Target {
		tg, err := p.Register(name, kind)
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	standby := reg("standby1", probe.KindStandby)
	sub := reg("sub1", probe.KindSubscriber)
	reg("pool", probe.KindEndpoint)
	down := reg("replica9", probe.KindStandby)
	caught := reg("caught", probe.KindStandby)

	p.WriterConn(nil)
	beat := func(seq int64, lost int64) heartbeat.Beat {
		b := heartbeat.Beat{
			Seq: seq, Sent: now.Add(-3 * time.Millisecond), Acked: now,
			LSN: heartbeat.LSN(0x3000000 + seq*0x100), PrimaryTime: now.Add(-2 * time.Millisecond), Lost: lost,
		}
		p.Beat(b)
		return b
	}
	now = at(1 * time.Second)
	beat(1, 0)
	standby.Connected()
	standby.Seen(1, at(900*time.Millisecond), at(1100*time.Millisecond)) // places it
	sub.Connected()
	sub.Seen(1, at(900*time.Millisecond), at(1100*time.Millisecond))
	caught.Connected()
	caught.Seen(1, at(900*time.Millisecond), at(1100*time.Millisecond))
	now = at(2 * time.Second)
	beat(2, 0)
	standby.Seen(2, at(2001*time.Millisecond), at(2005*time.Millisecond))
	// A poll that ended before beat 3 was sent showed it: dropped.
	now = at(3 * time.Second)
	beat(3, 0)
	sub.Seen(3, at(2500*time.Millisecond), at(2600*time.Millisecond))
	now = at(4 * time.Second)
	p.Missed(at(4*time.Second), errors.New("primary: connection refused"))
	now = at(5 * time.Second)
	beat(6, 1) // beat 5 was lost in a failover
	standby.Seen(6, at(5002*time.Millisecond), at(5010*time.Millisecond))
	now = at(6 * time.Second)
	beat(7, 0)
	down.Down(errors.New("replica9: dial tcp 10.0.0.9:5432: connection refused"))
	caught.Seen(7, at(6001*time.Millisecond), at(6003*time.Millisecond))
	p.WriterConflict(errors.New("another probe writes the heartbeat row of probe id golden"))

	yes := true
	status := "streaming"
	gap, workers := int64(4096), int64(1)
	sec := func(f float64) *time.Duration { d := time.Duration(f * float64(time.Second)); return &d }
	standby.SetClassic(probe.Classic{
		At: at(6 * time.Second), InRecovery: &yes, ReplayTimestampAge: sec(0.987654), ExporterLag: sec(0),
		ReceiveReplayGapBytes: &gap, ReceiverStatus: &status,
	})
	sub.SetClassic(probe.Classic{
		At: at(6 * time.Second), SubscriptionReceiptAge: sec(0.25), SubscriptionSendAge: sec(0.5),
		SubscriptionEndAge: sec(1.5), SubscriptionWorkers: &workers, Error: "pg_stat_subscription: permission denied",
	})
	started := at(-time.Hour)
	replied := at(5500 * time.Millisecond)
	active, prio := int32(4242), int32(1)
	p.SetPrimaryClassic(probe.ClassicPrimary{
		At: at(6 * time.Second),
		Replication: []probe.ReplicationRow{
			{ApplicationName: "standby1", ClientAddr: "10.0.0.2", PID: 4242, BackendStart: &started, SlotName: "standby1_slot",
				AsOf: &replied, State: "streaming", SentLSN: "0/3000700", WriteLSN: "0/3000700", FlushLSN: "0/3000600", ReplayLSN: "0/3000200",
				SyncState: "sync", SyncPriority: &prio,
				WriteLag: sec(0.001), FlushLag: sec(0.002), ReplayLag: nil},
			// No status message yet: its lag is unknown, not 0.
			{ApplicationName: "walreceiver", PID: 4300, State: "startup", SentLSN: "0/3000100", WriteLSN: "0/3000100"},
		},
		Hidden: "some rows are hidden",
		Slots: []probe.SlotRow{
			{SlotName: "standby1_slot", SlotType: "physical", Active: true, RestartLSN: "0/3000200", ActivePID: &active, AsOf: replied, AsOfSource: probe.AsOfReply},
			{SlotName: "debezium", SlotType: "logical", Active: false, ConfirmedFlushLSN: "0/3000100", RestartLSN: "0/3000000", AsOf: at(6 * time.Second), AsOfSource: probe.AsOfRead},
		},
	})
	// Synchronous replication as the watcher reports it; the rows above
	// are partly hidden, so each standby's sync_state is unknown.
	p.SetSyncRep(probe.SyncRep{
		At: at(6 * time.Second), SynchronousCommit: "on", StandbyNames: "FIRST 1 (standby1)", Method: "first", Num: 1,
		Listed: []string{"standby1"}, Active: true, WaitsFor: []string{"standby1"}, CommitWait: sec(0.002),
		CommitWaitFrom: "pg_stat_replication.flush_lag, the slowest of standby1, median of the last 3 samples",
	})
	// The writer misses a beat: caught, which had shown every acked
	// beat, no longer knows its lag (null, with an upper bound).
	now = at(7 * time.Second)
	p.Missed(at(7*time.Second), errors.New("primary: connection refused"))
	now = at(7500 * time.Millisecond)
	return p
}

// TestStateGolden pins /v1/state byte for byte: the JSON shape is an API
// that dashboards and scripts parse. Rewrite with go test ./sink/api -update
// after a deliberate change, and say so in the changelog.
func TestStateGolden(t *testing.T) {
	srv := newTestServer(t, goldenProbe(t))
	resp, err := http.Get(srv.URL + "/v1/state")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/state = %d", resp.StatusCode)
	}
	path := filepath.Join("testdata", "state.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with go test ./sink/api -run TestStateGolden -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("GET /v1/state differs from %s (rewrite with -update if the change is deliberate):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// A standby's sync_state, sync_priority (null while unknown) and
// sync_reason sit on its object in /v1/state; other kinds have none.
func TestTargetSyncJSON(t *testing.T) {
	one := 1
	tests := []struct {
		give probe.TargetSnapshot
		want []string
		not  []string
	}{
		{give: probe.TargetSnapshot{Name: "standby1", Kind: probe.KindStandby, Sync: &probe.SyncInfo{State: probe.SyncSync, Priority: &one}},
			want: []string{`"sync_state":"sync"`, `"sync_priority":1`}, not: []string{`"sync_reason"`}},
		{give: probe.TargetSnapshot{Name: "standby2", Kind: probe.KindStandby, Sync: &probe.SyncInfo{State: probe.SyncUnknown, Reason: "why"}},
			want: []string{`"sync_state":"unknown"`, `"sync_priority":null`, `"sync_reason":"why"`}},
		{give: probe.TargetSnapshot{Name: "stream", Kind: probe.KindStream}, not: []string{`"sync_state"`, `"sync_priority"`}},
	}
	for _, tt := range tests {
		b, err := json.Marshal(toTarget(tt.give))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s: %s lacks %s", tt.give.Name, b, w)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(string(b), n) {
				t.Errorf("%s: %s has %s", tt.give.Name, b, n)
			}
		}
	}
}
