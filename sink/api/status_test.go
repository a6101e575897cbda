package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
)

func newTestServer(t *testing.T, p *probe.Probe) *httptest.Server {
	t.Helper()
	s := New("127.0.0.1:0", p, http.NotFoundHandler(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(s.mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestStatusPage(t *testing.T) {
	srv := newTestServer(t, readyProbe(t))
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", got)
	}
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "connect-src 'self'") || !strings.Contains(got, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q, want fetches limited to this origin", got)
	}
	page := string(body)
	for _, want := range []string{"/v1/state", "/v1/history?target=", "el('canvas')", `<table id="targets">`, "dataset.points", "setTimeout(refresh"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	// Works offline: nothing is loaded from another origin.
	if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindString(page); m != "" {
		t.Errorf("status page references another origin: %q", m)
	}
	if strings.Contains(page, "innerHTML") {
		t.Error("status page uses innerHTML: target names and errors must be set as text")
	}

	// Only "/" is the page: other unknown paths stay 404.
	resp, err = http.Get(srv.URL + "/nosuch")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nosuch = %d, want 404", resp.StatusCode)
	}
}

func TestReadyzRule(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	tests := []struct {
		name       string
		give       *time.Time
		wantReady  bool
		wantReason string
	}{
		{name: "no beat yet", give: nil, wantReason: "no beat written yet"},
		{name: "fresh beat", give: at(200 * time.Millisecond), wantReady: true, wantReason: "200ms ago"},
		{name: "at the bound", give: at(5 * time.Second), wantReady: true},
		{name: "stale beat", give: at(5*time.Second + time.Millisecond), wantReason: "more than 5s"},
		{name: "ack after now (clock step) counts as fresh", give: at(-time.Second), wantReady: true, wantReason: "0s ago"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readyz(tt.give, now, 5*time.Second)
			if got.Ready != tt.wantReady {
				t.Errorf("ready = %v, want %v (%+v)", got.Ready, tt.wantReady, got)
			}
			if !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", got.Reason, tt.wantReason)
			}
			if (got.LastBeatAge == nil) != (tt.give == nil) {
				t.Errorf("last_beat_age = %v with last ack %v", got.LastBeatAge, tt.give)
			}
		})
	}
}

func TestReadyzMaxAge(t *testing.T) {
	tests := []struct {
		give, want time.Duration
	}{
		{give: 100 * time.Millisecond, want: 5 * time.Second},
		{give: time.Second, want: 5 * time.Second},
		{give: 10 * time.Second, want: 30 * time.Second},
	}
	for _, tt := range tests {
		if got := ReadyzMaxAge(tt.give); got != tt.want {
			t.Errorf("ReadyzMaxAge(%s) = %s, want %s", tt.give, got, tt.want)
		}
	}
}

// TestReadyzServed: /readyz follows the probe's newest beat, and /healthz
// stays 200 whatever the beats do.
func TestReadyzServed(t *testing.T) {
	p := probe.New(probe.Config{ProbeID: "t", Interval: time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := newTestServer(t, p)
	get := func(path string) (int, ReadyzBody) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var body ReadyzBody
		if path == "/readyz" {
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatalf("GET %s: %v: %s", path, err, b)
			}
		}
		return resp.StatusCode, body
	}
	if code, body := get("/readyz"); code != 503 || body.Ready {
		t.Errorf("/readyz before any beat = %d %+v, want 503", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz before any beat = %d, want 200", code)
	}
	old := time.Now().Add(-time.Minute)
	p.Beat(heartbeat.Beat{Seq: 1, Sent: old, Acked: old})
	if code, body := get("/readyz"); code != 503 || body.LastBeatAge == nil || *body.LastBeatAge < 59 {
		t.Errorf("/readyz with a beat a minute old = %d %+v, want 503 with its age", code, body)
	}
	now := time.Now()
	p.Beat(heartbeat.Beat{Seq: 2, Sent: now, Acked: now})
	if code, body := get("/readyz"); code != 200 || !body.Ready || body.MaxAge != 5 {
		t.Errorf("/readyz with a fresh beat = %d %+v, want 200 with max_age 5", code, body)
	}
}
