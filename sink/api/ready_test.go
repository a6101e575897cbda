package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
)

// readyProbe returns a probe with targets in known states, driven by
// synthetic beats: "fresh" has shown every beat, "behind" has not shown a
// beat acked 5s ago, "down" lost its session, "promoted" left recovery and
// "new" has never been polled.
func readyProbe(t *testing.T) *probe.Probe {
	t.Helper()
	// A 10 s interval: the last beat, acked 5 s ago, is not overdue.
	p := probe.New(probe.Config{ProbeID: "t", Interval: 10 * time.Second, LagThreshold: 2 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	reg := func(name string) *probe.Target {
		tg, err := p.Register(name, probe.KindStandby)
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	fresh, behind, down, promoted := reg("fresh"), reg("behind"), reg("down"), reg("promoted")
	reg("new")

	now := time.Now()
	p.Beat(heartbeat.Beat{Seq: 1, Sent: now.Add(-10 * time.Second), Acked: now.Add(-10 * time.Second)})
	for _, tg := range []*probe.Target{fresh, behind, down, promoted} {
		tg.Seen(1, now.Add(-9*time.Second), now.Add(-9*time.Second)) // first poll: position learnt
	}
	p.Beat(heartbeat.Beat{Seq: 2, Sent: now.Add(-5 * time.Second), Acked: now.Add(-5 * time.Second)})
	fresh.Seen(2, now.Add(-5*time.Second), now.Add(-4*time.Second))
	behind.Seen(1, now, now)
	down.Down(errors.New("connect to down: connection refused"))
	promoted.Promoted()
	return p
}

func TestReady(t *testing.T) {
	h := Ready(readyProbe(t))
	tests := []struct {
		give       string
		wantCode   int
		wantReady  bool
		wantReason string
	}{
		{give: "/v1/targets/fresh/ready", wantCode: 200, wantReady: true, wantReason: "< max_lag 2s"},
		{give: "/v1/targets/fresh/ready?max_lag=100ms", wantCode: 200, wantReady: true, wantReason: "< max_lag 100ms"},
		{give: "/v1/targets/behind/ready?max_lag=1s", wantCode: 503, wantReason: ">= max_lag 1s"},
		{give: "/v1/targets/behind/ready?max_lag=1m", wantCode: 200, wantReady: true, wantReason: "< max_lag 1m0s"},
		{give: "/v1/targets/down/ready?max_lag=1h", wantCode: 503, wantReason: "target is down: connect to down: connection refused"},
		{give: "/v1/targets/promoted/ready?max_lag=1h", wantCode: 503, wantReason: "promoted"},
		{give: "/v1/targets/new/ready?max_lag=1h", wantCode: 503, wantReason: "not measured yet"},
		{give: "/v1/targets/nosuch/ready", wantCode: 404},
		{give: "/v1/targets/fresh/ready?max_lag=soon", wantCode: 400},
		{give: "/v1/targets/fresh/ready?max_lag=-1s", wantCode: 400},
		{give: "/v1/targets/fresh/ready?max_lag=0s", wantCode: 400},
	}
	mux := http.NewServeMux()
	mux.Handle(ReadyPattern, h)
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", tt.give, nil))
			if got := rec.Code; got != tt.wantCode {
				t.Fatalf("status = %d, want %d; body %s", got, tt.wantCode, rec.Body)
			}
			if tt.wantCode != 200 && tt.wantCode != 503 {
				if !strings.Contains(rec.Body.String(), `"error"`) {
					t.Errorf("body has no error: %s", rec.Body)
				}
				return
			}
			var got ReadyBody
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Ready != tt.wantReady {
				t.Errorf("ready = %v, want %v (%s)", got.Ready, tt.wantReady, rec.Body)
			}
			if !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", got.Reason, tt.wantReason)
			}
			if got.State == "" {
				t.Errorf("no state in %s", rec.Body)
			}
		})
	}
}

// TestReadyLagMatchesSnapshot: the lag the endpoint judges is the one
// /v1/state shows, not a classic number.
func TestReadyLagMatchesSnapshot(t *testing.T) {
	rec := httptest.NewRecorder()
	mux := http.NewServeMux()
	mux.Handle(ReadyPattern, Ready(readyProbe(t)))
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/targets/behind/ready", nil))
	var got ReadyBody
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Lag == nil || *got.Lag < 4.9 || *got.Lag > 6 {
		t.Errorf("lag_seconds = %v, want about 5 (age of the unseen beat)", got.Lag)
	}
	// Readiness follows the lag the snapshot evaluated.
	if got.Ready || rec.Code != http.StatusServiceUnavailable {
		t.Errorf("ready with state %q and lag %v: status %d", got.State, got.Lag, rec.Code)
	}
}

// During a primary outage a target that had shown every acked beat is
// unknown: ready by default (replicas are all that is left), not ready
// with strict=true; a target that was already behind stays lagging and
// not ready.
func TestReadyDuringPrimaryOutage(t *testing.T) {
	p := probe.New(probe.Config{ProbeID: "t", Interval: time.Second, LagThreshold: 2 * time.Second}, slog.New(slog.DiscardHandler))
	caught, behind := func() (*probe.Target, *probe.Target) {
		a, _ := p.Register("caught", probe.KindStandby)
		b, _ := p.Register("behind", probe.KindStandby)
		return a, b
	}()
	now := time.Now()
	p.Beat(heartbeat.Beat{Seq: 1, Sent: now.Add(-20 * time.Second), Acked: now.Add(-20 * time.Second)})
	caught.Seen(1, now.Add(-19*time.Second), now.Add(-19*time.Second))
	behind.Seen(1, now.Add(-19*time.Second), now.Add(-19*time.Second))
	p.Beat(heartbeat.Beat{Seq: 2, Sent: now.Add(-12 * time.Second), Acked: now.Add(-12 * time.Second)})
	caught.Seen(2, now.Add(-12*time.Second), now.Add(-11*time.Second))
	p.Missed(now.Add(-10*time.Second), errors.New("primary: connection refused"))
	mux := http.NewServeMux()
	mux.Handle(ReadyPattern, Ready(p))
	tests := []struct {
		give        string
		wantCode    int
		wantUnknown bool
	}{
		{"/v1/targets/caught/ready?max_lag=1s", 200, true},
		{"/v1/targets/caught/ready?max_lag=1s&strict=true", 503, true},
		{"/v1/targets/caught/ready?strict=maybe", 400, false},
		{"/v1/targets/behind/ready?max_lag=1s", 503, false},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", tt.give, nil))
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode == 400 {
				return
			}
			var got ReadyBody
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.LagUnknown != tt.wantUnknown || (rec.Header().Get(LagUnknownHeader) == "true") != tt.wantUnknown {
				t.Fatalf("lag_unknown %v header %q, want %v: %s", got.LagUnknown, rec.Header().Get(LagUnknownHeader), tt.wantUnknown, rec.Body)
			}
			if tt.wantUnknown && (got.Lag != nil || got.LagUpperBound == nil || *got.LagUpperBound < 9) {
				t.Fatalf("unknown lag: lag %v upper bound %v, want null and ≥ 9 s: %s", got.Lag, got.LagUpperBound, rec.Body)
			}
			if tt.give == "/v1/targets/behind/ready?max_lag=1s" && (got.Lag == nil || *got.Lag < 11) {
				t.Fatalf("behind: lag %v, want ≥ 11 s (from its oldest unshown beat): %s", got.Lag, rec.Body)
			}
		})
	}
}
