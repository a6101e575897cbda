package probe

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The reader parses the poll's text row in place (no pgx row machinery):
// these tables are what it accepts from the wire.

func TestAtoi(t *testing.T) {
	tests := []struct {
		give   string
		want   int64
		wantOK bool
	}{
		{give: "0", want: 0, wantOK: true},
		{give: "42", want: 42, wantOK: true},
		{give: "-7", want: -7, wantOK: true},
		{give: "9223372036854775807", want: 1<<63 - 1, wantOK: true},
		{give: "-9223372036854775808", want: -1 << 63, wantOK: true},
		{give: "9223372036854775808", wantOK: false},  // one past max
		{give: "-9223372036854775809", wantOK: false}, // one past min
		{give: "12345678901234567890", wantOK: false}, // 20 digits
		{give: "", wantOK: false},
		{give: "-", wantOK: false},
		{give: "+1", wantOK: false},
		{give: "1.5", wantOK: false},
		{give: " 1", wantOK: false},
	}
	for _, tt := range tests {
		got, ok := atoi([]byte(tt.give))
		if ok != tt.wantOK || (ok && got != tt.want) {
			t.Errorf("atoi(%q) = %d, %v; want %d, %v", tt.give, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestParseSeq(t *testing.T) {
	tests := []struct {
		name    string
		give    []byte
		want    int64
		wantErr bool
	}{
		{name: "NULL: no row on the target yet", give: nil, want: 0},
		{name: "a seq", give: []byte("17"), want: 17},
		{name: "not a number", give: []byte("x"), wantErr: true},
		{name: "empty is not NULL", give: []byte{}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSeq(tt.give)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseSeq(%q) error = %v, want error %v", tt.give, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errShape) {
				t.Fatalf("parseSeq(%q) error %v is not errShape", tt.give, err)
			}
			if got != tt.want {
				t.Fatalf("parseSeq(%q) = %d, want %d", tt.give, got, tt.want)
			}
		})
	}
}

// newTestReader returns a reader of kind on a probe with a fake clock,
// without connecting anywhere.
func newTestReader(t *testing.T, kind Kind) (*Reader, *fakeClock) {
	t.Helper()
	p, _, clk := newTestProbe(t, Config{Interval: time.Second})
	conn, err := pgx.ParseConfig("postgres://walprobe@127.0.0.1:1/app")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(ReaderConfig{Name: "r", Kind: kind, Conn: conn, ProbeID: "t"}, p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.now = clk.Now
	return r, clk
}

func row(vals ...string) [][]byte {
	out := make([][]byte, len(vals))
	for i, v := range vals {
		if v != "NULL" {
			out[i] = []byte(v)
		}
	}
	return out
}

func TestParseClassicStandby(t *testing.T) {
	r, _ := newTestReader(t, KindStandby)
	seq, c, err := r.parseClassic(row("5", "t", "1.5", "0", "1024", "streaming"))
	if err != nil {
		t.Fatal(err)
	}
	if seq != 5 {
		t.Errorf("seq = %d, want 5", seq)
	}
	if c.InRecovery == nil || !*c.InRecovery {
		t.Errorf("in_recovery = %v, want true", c.InRecovery)
	}
	if c.ReplayTimestampAge == nil || *c.ReplayTimestampAge != 1500*time.Millisecond {
		t.Errorf("replay_timestamp_age = %v, want 1.5", c.ReplayTimestampAge)
	}
	if c.ExporterLag == nil || *c.ExporterLag != 0 {
		t.Errorf("exporter_lag = %v, want 0", c.ExporterLag)
	}
	if c.ReceiveReplayGapBytes == nil || *c.ReceiveReplayGapBytes != 1024 {
		t.Errorf("receive_replay_gap = %v, want 1024", c.ReceiveReplayGapBytes)
	}
	if c.ReceiverStatus == nil || *c.ReceiverStatus != "streaming" {
		t.Errorf("receiver_status = %v, want streaming", c.ReceiverStatus)
	}

	// A fresh standby: no row yet, no replayed transaction, no receiver.
	seq, c, err = r.parseClassic(row("NULL", "t", "NULL", "0", "0", "NULL"))
	if err != nil || seq != 0 || c.ReplayTimestampAge != nil || c.ReceiverStatus != nil {
		t.Errorf("fresh standby: seq %d classic %+v err %v; want seq 0, NULLs kept as nil", seq, c, err)
	}
}

func TestParseClassicSubscriber(t *testing.T) {
	r, _ := newTestReader(t, KindSubscriber)
	seq, c, err := r.parseClassic(row("9", "0.25", "0.5", "NULL", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if seq != 9 || c.SubscriptionReceiptAge == nil || *c.SubscriptionReceiptAge != 250*time.Millisecond ||
		c.SubscriptionSendAge == nil || *c.SubscriptionSendAge != 500*time.Millisecond || c.SubscriptionEndAge != nil ||
		c.SubscriptionWorkers == nil || *c.SubscriptionWorkers != 1 {
		t.Errorf("parseClassic = %d, %+v", seq, c)
	}
	if c.InRecovery != nil {
		t.Errorf("a subscriber has no in_recovery, got %v", *c.InRecovery)
	}
}

// A pooler or proxy that answers with another row shape is an error
// naming what was wrong, never a silently wrong number.
func TestParseClassicRejectsOtherShapes(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		give [][]byte
	}{
		{name: "too few columns", kind: KindStandby, give: row("1", "t")},
		{name: "subscriber row to a standby", kind: KindStandby, give: row("1", "0", "0", "0", "1")},
		{name: "in_recovery not a bool", kind: KindStandby, give: row("1", "yes", "0", "0", "0", "streaming")},
		{name: "age not a number", kind: KindStandby, give: row("1", "t", "soon", "0", "0", "streaming")},
		{name: "gap not an integer", kind: KindStandby, give: row("1", "t", "0", "0", "1.5", "streaming")},
		{name: "workers not an integer", kind: KindSubscriber, give: row("1", "0", "0", "0", "x")},
		{name: "seq not a number", kind: KindSubscriber, give: row("x", "0", "0", "0", "1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newTestReader(t, tt.kind)
			_, _, err := r.parseClassic(tt.give)
			if !errors.Is(err, errShape) {
				t.Fatalf("parseClassic(%q) error = %v, want errShape", tt.give, err)
			}
		})
	}
}

// The probe id goes into the SQL text (no bind parameters through a
// transaction pooler): it is quoted so that it means the same whatever
// standard_conforming_strings says.
func TestQuoteLiteral(t *testing.T) {
	tests := []struct{ give, want string }{
		{give: "db1", want: `E'db1'`},
		{give: "o'brien", want: `E'o''brien'`},
		{give: `a\b`, want: `E'a\\b'`},
		{give: `\'`, want: `E'\\'''`},
	}
	for _, tt := range tests {
		if got := quoteLiteral(tt.give); got != tt.want {
			t.Errorf("quoteLiteral(%q) = %s, want %s", tt.give, got, tt.want)
		}
	}
}

func TestNewReaderValidates(t *testing.T) {
	conn, err := pgx.ParseConfig("postgres://walprobe@127.0.0.1:1/app")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give ReaderConfig
	}{
		{name: "unknown kind", give: ReaderConfig{Name: "x", Kind: "primary", Conn: conn}},
		{name: "no DSN", give: ReaderConfig{Name: "x", Kind: KindStandby}},
		{name: "NUL in probe id", give: ReaderConfig{Name: "x", Kind: KindStandby, Conn: conn, ProbeID: "a\x00b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(Config{ProbeID: "t", Interval: time.Second}, slog.New(slog.DiscardHandler))
			if _, err := NewReader(tt.give, p, slog.New(slog.DiscardHandler)); err == nil {
				t.Fatal("NewReader accepted it")
			}
		})
	}
}

// A poll may take long and still time every beat it shows: it is a slow
// poll, a reason to reconnect, only after max(3 intervals, 10 s).
func TestPollTimeout(t *testing.T) {
	tests := []struct {
		give time.Duration
		want time.Duration
	}{
		{give: 100 * time.Millisecond, want: 10 * time.Second},
		{give: time.Second, want: 10 * time.Second},
		{give: 5 * time.Second, want: 15 * time.Second},
	}
	for _, tt := range tests {
		r := &Reader{cfg: ReaderConfig{Interval: tt.give}}
		if got := r.pollTimeout(); got != tt.want {
			t.Errorf("pollTimeout at interval %v = %v, want %v", tt.give, got, tt.want)
		}
	}
}
