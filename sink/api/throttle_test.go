package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
)

func lagOf(d time.Duration) *time.Duration { return &d }

func TestThrottleVerdict(t *testing.T) {
	ok := func(name string, lag time.Duration) probe.TargetSnapshot {
		return probe.TargetSnapshot{Name: name, Kind: probe.KindStandby, State: probe.StateHealthy, Lag: lagOf(lag), BeatsTimed: 1}
	}
	tests := []struct {
		name       string
		give       []probe.TargetSnapshot
		wantCode   int
		wantWorst  string
		wantReason string
	}{
		{"all under", []probe.TargetSnapshot{ok("a", 100*time.Millisecond), ok("b", 300*time.Millisecond)}, 200, "b", "worst b 0.300s"},
		{"equal is under", []probe.TargetSnapshot{ok("a", 2*time.Second)}, 200, "a", "<= max_lag"},
		{"one over", []probe.TargetSnapshot{ok("a", 100*time.Millisecond), ok("b", 3*time.Second)}, 429, "b", "b lag 3.000s > max_lag 2s"},
		{"lagging state judged by lag", []probe.TargetSnapshot{{Name: "a", State: probe.StateLagging, Lag: lagOf(time.Second), BeatsTimed: 3}}, 200, "a", ""},
		{"stalled over", []probe.TargetSnapshot{{Name: "a", State: probe.StateStalled, Lag: lagOf(30 * time.Second), BeatsTimed: 3}}, 429, "a", ""},
		{"unknown fails closed", []probe.TargetSnapshot{ok("a", 0), {Name: "u", State: probe.StateUnknown, LagUpperBound: lagOf(5 * time.Second)}}, 503, "u", "primary cannot be written"},
		{"down fails closed", []probe.TargetSnapshot{ok("a", 0), {Name: "d", State: probe.StateDown, LastError: "connection refused"}}, 503, "d", "d is down: connection refused"},
		{"down wins over over", []probe.TargetSnapshot{ok("a", time.Hour), {Name: "d", State: probe.StateDown}}, 503, "d", "fails closed"},
		{"connecting", []probe.TargetSnapshot{{Name: "c", State: probe.StateConnecting}}, 503, "c", "not measured"},
		{"promoted", []probe.TargetSnapshot{{Name: "p", State: probe.StatePromoted, Lag: lagOf(0)}}, 503, "p", "promoted"},
		{"no beat of this run timed yet", []probe.TargetSnapshot{ok("a", 0), {Name: "n", State: probe.StateHealthy, Lag: lagOf(100 * time.Millisecond)}}, 503, "n", "not shown a beat of this run"},
		{"nil lag", []probe.TargetSnapshot{{Name: "n", State: probe.StateHealthy}}, 503, "n", "unknown lag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, code := ThrottleVerdict(tt.give, 2*time.Second)
			if code != tt.wantCode || got.Worst != tt.wantWorst || got.OK != (tt.wantCode == 200) {
				t.Fatalf("got %d %+v, want %d worst %s", code, got, tt.wantCode, tt.wantWorst)
			}
			if !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("reason %q, want it to contain %q", got.Reason, tt.wantReason)
			}
		})
	}
}

func TestThrottleSelectionPick(t *testing.T) {
	ts := []probe.TargetSnapshot{
		{Name: "e", Kind: probe.KindEndpoint}, {Name: "s1", Kind: probe.KindStandby},
		{Name: "s2", Kind: probe.KindStandby}, {Name: "stream", Kind: probe.KindStream}, {Name: "sub", Kind: probe.KindSubscriber},
	}
	tests := []struct {
		name    string
		give    ThrottleSelection
		want    []string
		wantErr string
	}{
		{"default", ThrottleSelection{}, []string{"e", "s1", "s2", "sub"}, ""},
		{"names", ThrottleSelection{Names: []string{"s2", "stream"}}, []string{"s2", "stream"}, ""},
		{"kind", ThrottleSelection{Kinds: []probe.Kind{probe.KindStandby}}, []string{"s1", "s2"}, ""},
		{"names and kinds add up", ThrottleSelection{Names: []string{"sub"}, Kinds: []probe.Kind{probe.KindStream}}, []string{"stream", "sub"}, ""},
		{"unknown name", ThrottleSelection{Names: []string{"nosuch"}}, nil, `no target named "nosuch"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.give.Pick(ts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, g := range got {
				names = append(names, g.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("picked %v, want %v", names, tt.want)
			}
		})
	}
	if _, err := (ThrottleSelection{}).Pick([]probe.TargetSnapshot{{Name: "stream", Kind: probe.KindStream}}); err == nil {
		t.Error("a default selection with only the stream picked nothing and did not say so")
	}
}

func TestRetryAfter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64, lag time.Duration) lagSample {
		return lagSample{at: t0.Add(time.Duration(s * float64(time.Second))), lag: lag}
	}
	now := t0.Add(4 * time.Second)
	tests := []struct {
		name    string
		give    []lagSample
		lag     time.Duration
		want    time.Duration
		comment string
	}{
		{"no history", nil, 10 * time.Second, 2 * time.Second, "fallback: the interval"},
		{"growing", []lagSample{at(0, 6*time.Second)}, 10 * time.Second, 2 * time.Second, "not falling: fallback"},
		{"flat", []lagSample{at(0, 10*time.Second)}, 10 * time.Second, 2 * time.Second, "not falling: fallback"},
		{"falling 2/s", []lagSample{at(0, 18*time.Second), at(2, 14*time.Second)}, 10 * time.Second, 4 * time.Second, "(10-2)/2 = 4 s"},
		{"falling slowly, rounds up", []lagSample{at(0, 12*time.Second)}, 10 * time.Second, 16 * time.Second, "(10-2)/0.5 = 16 s"},
		{"almost there", []lagSample{at(0, 20*time.Second)}, 2100 * time.Millisecond, time.Second, "at least 1 s"},
		{"crawling", []lagSample{at(0, 10*time.Second+40*time.Millisecond)}, 10 * time.Second, 60 * time.Second, "at most 60 s"},
		{"under", []lagSample{at(0, 5*time.Second)}, time.Second, time.Second, "already under"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfter(tt.give, now, tt.lag, 2*time.Second, 1500*time.Millisecond); got != tt.want {
				t.Errorf("retryAfter = %v, want %v (%s)", got, tt.want, tt.comment)
			}
		})
	}
}

func TestThrottle(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle(ThrottlePattern, Throttle(readyProbe(t)))
	tests := []struct {
		give      string
		wantCode  int
		wantWorst string
	}{
		{"/v1/throttle?max_lag=1m", 503, "behind"},                            // the first in name order that fails closed
		{"/v1/throttle?max_lag=1m&target=fresh&target=behind", 503, "behind"}, // no beat timed on behind yet
		{"/v1/throttle?max_lag=1s&target=fresh", 200, "fresh"},
		{"/v1/throttle?target=fresh", 200, "fresh"},
		{"/v1/throttle?max_lag=1s&target=new", 503, "new"},
		{"/v1/throttle?max_lag=1s&target=promoted", 503, "promoted"},
		{"/v1/throttle?kind=standby", 503, "behind"},
		{"/v1/throttle?max_lag=1s&target=nosuch", 404, ""},
		{"/v1/throttle?kind=subscriber", 404, ""},
		{"/v1/throttle?kind=replica", 400, ""},
		{"/v1/throttle?max_lag=soon", 400, ""},
		{"/v1/throttle?max_lag=0s", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", tt.give, nil))
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantWorst == "" {
				if !strings.Contains(rec.Body.String(), `"error"`) {
					t.Errorf("body has no error: %s", rec.Body)
				}
				return
			}
			var got ThrottleBody
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Worst != tt.wantWorst || got.OK != (rec.Code == 200) {
				t.Errorf("worst %q ok %v, want %q: %s", got.Worst, got.OK, tt.wantWorst, rec.Body)
			}
			ra := rec.Header().Get("Retry-After")
			if (rec.Code == 200) != (ra == "") || (ra != "" && ra < "1") {
				t.Errorf("Retry-After %q with status %d", ra, rec.Code)
			}
		})
	}
}

// BenchmarkThrottle times whole answers (routing, snapshot, verdict,
// JSON) from a probe with 100 targets, and reports the 99th percentile:
// the throttle must answer within 1 ms p99.
func BenchmarkThrottle(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			// A stopped clock: the state stays as set up however long it runs.
			now := time.Now()
			p := probe.NewForTest(probe.Config{ProbeID: "b", Interval: time.Second}, slog.New(slog.DiscardHandler), func() time.Time { return now })
			p.Beat(heartbeat.Beat{Seq: 1, Sent: now.Add(-2 * time.Second), Acked: now.Add(-2 * time.Second)})
			p.Beat(heartbeat.Beat{Seq: 2, Sent: now.Add(-time.Second), Acked: now.Add(-time.Second)})
			for i := range n {
				tg, err := p.Register(fmt.Sprintf("standby%03d", i), probe.KindStandby)
				if err != nil {
					b.Fatal(err)
				}
				tg.Seen(1, now.Add(-1500*time.Millisecond), now.Add(-1500*time.Millisecond))
				tg.Seen(2, now.Add(-500*time.Millisecond), now)
			}
			mux := http.NewServeMux()
			mux.Handle(ThrottlePattern, Throttle(p))
			req := httptest.NewRequest("GET", "/v1/throttle?max_lag=1m", nil)
			var lat []time.Duration
			for b.Loop() {
				rec := httptest.NewRecorder()
				start := time.Now()
				mux.ServeHTTP(rec, req)
				lat = append(lat, time.Since(start))
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
		})
	}
}
