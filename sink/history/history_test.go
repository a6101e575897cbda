package history

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
)

func newProbe(t *testing.T) *probe.Probe {
	t.Helper()
	return probe.New(probe.Config{ProbeID: "t", Interval: 100 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestHandler(t *testing.T) {
	p := newProbe(t)
	r1, err := p.Register("replica1", probe.KindStandby)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Capacity: 100, Interval: time.Second}, p)
	if err != nil {
		t.Fatal(err)
	}
	p.Observe(h)
	now := time.Now()
	h.now = func() time.Time { return now }
	// A timed beat through the probe, and lag samples recorded directly.
	r1.Seen(0, now.Add(-time.Minute), now.Add(-time.Minute))
	p.Beat(heartbeat.Beat{Seq: 1, Sent: now.Add(-50 * time.Second), Acked: now.Add(-50 * time.Second)})
	r1.Seen(1, now.Add(-50*time.Second), now.Add(-50*time.Second).Add(4*time.Millisecond))
	for i := range 10 {
		h.Record("replica1", Sample{At: now.Add(-time.Duration(10-i) * time.Second), Lag: time.Duration(i) * time.Millisecond, HasLag: true})
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	tests := []struct {
		name     string
		give     string
		wantCode int
		wantBody string
	}{
		{name: "missing target", give: "", wantCode: http.StatusBadRequest, wantBody: "target: required"},
		{name: "unknown target", give: "?target=nope", wantCode: http.StatusNotFound, wantBody: "unknown target"},
		{name: "bad since", give: "?target=replica1&since=yesterday", wantCode: http.StatusBadRequest, wantBody: "since"},
		{name: "negative since", give: "?target=replica1&since=-1m", wantCode: http.StatusBadRequest, wantBody: "since"},
		{name: "bad points", give: "?target=replica1&points=0", wantCode: http.StatusBadRequest, wantBody: "points"},
		{name: "all bad at once", give: "?since=x&points=y", wantCode: http.StatusBadRequest, wantBody: "points"},
		{name: "ok", give: "?target=replica1&since=1m&points=6", wantCode: http.StatusOK},
		{name: "default points", give: "?target=replica1", wantCode: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "/v1/history" + tt.give)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantCode, body)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body %s, want it to contain %q", body, tt.wantBody)
			}
		})
	}

	resp, err := http.Get(srv.URL + "/v1/history?target=replica1&since=1m&points=6")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got Response
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Buckets) != 6 || got.Step != 10 {
		t.Fatalf("got %d buckets of %gs, want 6 of 10s", len(got.Buckets), got.Step)
	}
	// Bucket 1 (50s–40s ago) holds the timed beat; bucket 5 the lags 1–9 ms
	// (0 ms fell at exactly 10s ago, bucket 5's start, so it is there too).
	if d := got.Buckets[1].Delay; d == nil || d.N != 1 || float64(d.Max) != 0.002 {
		t.Errorf("bucket 1 delay = %+v, want one beat at 2ms", d)
	}
	if l := got.Buckets[5].Lag; l == nil || l.N != 10 || float64(l.Max) != 0.009 || float64(l.Min) != 0 {
		t.Errorf("bucket 5 lag = %+v, want 10 samples 0–9ms", l)
	}
	if got.Buckets[0].Lag != nil || got.Buckets[0].Delay != nil {
		t.Errorf("bucket 0 = %+v, want a gap", got.Buckets[0])
	}
}

// TestSampler runs the sampler against a probe whose target was polled:
// it records lag samples, and none for a target never polled.
func TestSampler(t *testing.T) {
	p := newProbe(t)
	r1, _ := p.Register("replica1", probe.KindStandby)
	if _, err := p.Register("silent", probe.KindStandby); err != nil {
		t.Fatal(err)
	}
	r1.Seen(0, time.Now(), time.Now())
	h, err := New(Config{Capacity: 5, Interval: 10 * time.Millisecond}, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = h.Run(ctx) })
	deadline := time.Now().Add(5 * time.Second)
	for len(h.Samples("replica1", time.Time{})) < 5 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	got := h.Samples("replica1", time.Time{})
	if len(got) != 5 {
		t.Fatalf("%d samples, want the capacity, 5", len(got))
	}
	for _, s := range got {
		if !s.HasLag || s.HasDelay {
			t.Errorf("sample %+v, want a lag sample", s)
		}
	}
	if n := len(h.Samples("silent", time.Time{})); n != 0 {
		t.Errorf("never-polled target has %d samples, want 0", n)
	}
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{Capacity: -1, Interval: -time.Second}, nil)
	if err == nil || !strings.Contains(err.Error(), "capacity") || !strings.Contains(err.Error(), "interval") {
		t.Errorf("New = %v, want both capacity and interval reported", err)
	}
}
