package walstream

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func textCol(s string) *pglogrepl.TupleDataColumn {
	return &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeText, Length: uint32(len(s)), Data: []byte(s)}
}

func tuple(id, seq string) *pglogrepl.TupleData {
	return &pglogrepl.TupleData{ColumnNum: 3, Columns: []*pglogrepl.TupleDataColumn{textCol(id), textCol(seq), textCol("2026-01-01 00:00:00+00")}}
}

func heartbeatRel(id uint32) *pglogrepl.RelationMessage {
	return &pglogrepl.RelationMessage{RelationID: id, Namespace: "walprobe", RelationName: "heartbeat", ColumnNum: 3,
		Columns: []*pglogrepl.RelationMessageColumn{{Name: "probe_id"}, {Name: "seq"}, {Name: "written_at"}}}
}

func TestDecoder(t *testing.T) {
	commit := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	begin := &pglogrepl.BeginMessage{CommitTime: commit}
	end := &pglogrepl.CommitMessage{CommitTime: commit}
	other := &pglogrepl.RelationMessage{RelationID: 7, Namespace: "public", RelationName: "t",
		Columns: []*pglogrepl.RelationMessageColumn{{Name: "probe_id"}, {Name: "seq"}}}
	tests := []struct {
		name   string
		give   []pglogrepl.Message
		want   beatCommit
		wantOK bool
	}{
		{"update of our row", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("me", "42")}, end},
			beatCommit{Seq: 42, Commit: commit}, true},
		{"insert of our row", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.InsertMessage{RelationID: 5, Tuple: tuple("me", "1")}, end},
			beatCommit{Seq: 1, Commit: commit}, true},
		{"other probe", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("you", "9")}, end},
			beatCommit{}, false},
		{"other relation same shape", []pglogrepl.Message{heartbeatRel(5), other, begin, &pglogrepl.UpdateMessage{RelationID: 7, NewTuple: tuple("me", "9")}, end},
			beatCommit{}, false},
		{"relation not yet seen", []pglogrepl.Message{begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("me", "9")}, end},
			beatCommit{}, false},
		{"id reused by another table", []pglogrepl.Message{heartbeatRel(5), &pglogrepl.RelationMessage{RelationID: 5, Namespace: "public", RelationName: "x"},
			begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("me", "9")}, end}, beatCommit{}, false},
		{"highest seq in one txn", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("me", "3")},
			&pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("me", "4")}, end}, beatCommit{Seq: 4, Commit: commit}, true},
		{"null seq", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: &pglogrepl.TupleData{
			Columns: []*pglogrepl.TupleDataColumn{textCol("me"), {DataType: pglogrepl.TupleDataTypeNull}, textCol("x")}}}, end}, beatCommit{}, false},
		{"short tuple", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: &pglogrepl.TupleData{
			Columns: []*pglogrepl.TupleDataColumn{textCol("me")}}}, end}, beatCommit{}, false},
		{"commit without begin", []pglogrepl.Message{heartbeatRel(5), end}, beatCommit{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decoder{probeID: "me"}
			var (
				got   beatCommit
				gotOK bool
			)
			for _, m := range tt.give {
				if bc, ok := d.handle(m); ok {
					got, gotOK = bc, ok
				}
			}
			if gotOK != tt.wantOK || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, %v", got, gotOK, tt.want, tt.wantOK)
			}
			if d.inTxn {
				t.Errorf("decoder still in a transaction after commit")
			}
		})
	}
}

func TestExplain(t *testing.T) {
	cfg, err := pgx.ParseConfig("host=db.example port=5433 user=probe dbname=app password=sekrit")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		give     error
		wantKind error
		wantText string
	}{
		{"no replication pg15", &pgconn.PgError{Code: "42501", Message: "must be superuser or replication role to start walsender"},
			ErrNoReplicationRole, `ALTER ROLE "probe" REPLICATION`},
		{"no replication pg16", &pgconn.PgError{Code: "42501", Message: "permission denied to start WAL sender",
			Detail: "Only roles with the REPLICATION attribute may start a WAL sender process."}, ErrNoReplicationRole, "REPLICATION"},
		{"slots exhausted", &pgconn.PgError{Code: "53400", Message: "all replication slots are in use"}, ErrSlotsExhausted, "raise max_replication_slots"},
		{"slots exhausted wrapped", fmt.Errorf("create slot x: %w", &pgconn.PgError{Code: "53400", Message: "all replication slots are in use"}),
			ErrSlotsExhausted, "max_replication_slots"},
		{"senders exhausted", &pgconn.PgError{Code: "53300", Message: "number of requested standby connections exceeds max_wal_senders (currently 10)"},
			ErrSendersExhausted, "raise max_wal_senders"},
		{"wal_level", &pgconn.PgError{Code: "55000", Message: "logical decoding requires wal_level >= logical"},
			ErrWalLevel, "set wal_level = logical in postgresql.conf and restart the primary"},
		{"publication", &pgconn.PgError{Code: "42704", Message: `publication "walprobe_heartbeat" does not exist`},
			ErrNoPublication, "CREATE PUBLICATION walprobe_heartbeat FOR TABLE walprobe.heartbeat"},
		{"other permission", &pgconn.PgError{Code: "42501", Message: "permission denied for database app"}, nil, "permission denied"},
		{"server went away", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), io.ErrUnexpectedEOF, "closed the replication connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explain("stream", cfg, tt.give)
			if tt.wantKind != nil && !errors.Is(got, tt.wantKind) {
				t.Errorf("errors.Is(%v, %v) = false", got, tt.wantKind)
			}
			var pe *pgconn.PgError
			if errors.As(tt.give, &pe) && !errors.As(got, &pe) {
				t.Errorf("%v does not unwrap to the server's error", got)
			}
			if !strings.Contains(got.Error(), tt.wantText) {
				t.Errorf("got %q, want it to contain %q", got, tt.wantText)
			}
			if !strings.Contains(got.Error(), "db.example:5433/app") {
				t.Errorf("got %q, want it to name the server", got)
			}
			if strings.Contains(got.Error(), "sekrit") {
				t.Errorf("got %q, leaks the password", got)
			}
		})
	}
}

func TestSlotName(t *testing.T) {
	tests := []struct {
		prefix, give string
		wantStart    string
	}{
		{"walprobe_", "probe-1", "walprobe_probe_1_"},
		{"walprobe_", "Host.Example:5432", "walprobe_host_example_5432_"},
		{"walprobe_", strings.Repeat("x", 100), "walprobe_" + strings.Repeat("x", 63-9-1-suffixLen) + "_"},
		{"w_", "ünï", "w__n__"},
	}
	for _, tt := range tests {
		got := slotName(tt.prefix, tt.give)
		if !strings.HasPrefix(got, tt.wantStart) || len(got) != len(tt.wantStart)+suffixLen || len(got) > 63 || sanitize(got) != got {
			t.Errorf("slotName(%q, %q) = %q, want %q + %d random", tt.prefix, tt.give, got, tt.wantStart, suffixLen)
		}
	}
	if a, b := slotName("p_", "x"), slotName("p_", "x"); a == b {
		t.Errorf("two slot names are both %q", a)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{StatusInterval: time.Millisecond, SlotPrefix: "Bad-"}
	err := c.Validate()
	for _, want := range []string{"DSN is required", "probe_id is required", "below 100ms", "slot prefix"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	c = Config{Conn: &pgx.ConnConfig{}, ProbeID: "p"}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if c.Publication != "walprobe_heartbeat" || c.StatusInterval != DefaultStatusInterval || c.SlotPrefix != DefaultSlotPrefix {
		t.Errorf("defaults not filled: %+v", c)
	}
}
