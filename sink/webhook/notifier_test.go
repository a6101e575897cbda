package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walprobe/walprobe/sink/alert"
	"github.com/walprobe/walprobe/test/fakes"
)

const (
	secret = "s3cret"
	// canary stands for a token in the webhook's path and query.
	canary = "CANARY-TOKEN"
)

// receiver is a webhook endpoint that fails the first failFirst requests
// with 503 and answers status after.
type receiver struct {
	t         *testing.T
	failFirst int
	status    int

	mu     sync.Mutex
	n      int
	bodies [][]byte
	badSig int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if !Verify([]byte(secret), b, req.Header.Get(SignatureHeader)) {
		r.badSig++
	}
	if r.n <= r.failFirst {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if r.status != 0 {
		w.WriteHeader(r.status)
		return
	}
	r.bodies = append(r.bodies, b)
}

func (r *receiver) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// syncBuffer collects logs from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestNotifier(t *testing.T, cfg Config, logs io.Writer) *Notifier {
	t.Helper()
	cfg.Secret = secret
	if cfg.RetryWaitMin == 0 {
		cfg.RetryWaitMin, cfg.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	}
	n, err := New(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs n until the test ends and waits for Run to return.
func start(t *testing.T, n *Notifier) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run() = %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRetryDedupeResolve(t *testing.T) {
	rcv := &receiver{t: t, failFirst: 2}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	var logs syncBuffer
	n := newTestNotifier(t, Config{URL: srv.URL + "/hooks/" + canary + "?token=" + canary}, &logs)
	stop := start(t, n)

	started := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	down := alert.Alert{Name: alert.TargetDown, Target: "replica1", Severity: "critical", Summary: "replica1 is down", Firing: true, StartedAt: started}
	if !n.Notify(down) {
		t.Fatal("first firing Notify = false, want queued")
	}
	for range 3 {
		if n.Notify(down) {
			t.Error("repeated firing Notify = true, want deduplicated")
		}
	}
	fakes.WaitFor(t.Context(), t, 10*time.Second, "firing delivered", func() bool { return n.Sent() == 1 })
	if got := rcv.requests(); got != 3 {
		t.Errorf("requests = %d, want 3 (two 503s retried, then delivered)", got)
	}
	resolved := down
	resolved.Firing, resolved.EndedAt = false, started.Add(time.Minute)
	if !n.Notify(resolved) {
		t.Fatal("resolved Notify = false, want queued")
	}
	if n.Notify(resolved) {
		t.Error("second resolved Notify = true, want ignored")
	}
	fakes.WaitFor(t.Context(), t, 10*time.Second, "resolved delivered", func() bool { return n.Sent() == 2 })
	stop()

	if got := rcv.requests(); got != 4 {
		t.Errorf("requests = %d, want 4", got)
	}
	if rcv.badSig != 0 {
		t.Errorf("%d requests had a bad signature", rcv.badSig)
	}
	var got []Payload
	for _, b := range rcv.bodies {
		var p Payload
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
		got = append(got, p)
	}
	if len(got) != 2 || got[0].Status != "firing" || got[1].Status != "resolved" {
		t.Fatalf("payloads = %+v, want firing then resolved", got)
	}
	if got[0].Version != "1" || got[0].Alert != alert.TargetDown || got[0].Target != "replica1" || got[0].EndedAt != nil {
		t.Errorf("firing payload = %+v", got[0])
	}
	if got[1].EndedAt == nil || !got[1].EndedAt.Equal(resolved.EndedAt) || !got[1].StartedAt.Equal(started) {
		t.Errorf("resolved payload = %+v", got[1])
	}
	if n.Failed() != 0 || n.Dropped() != 0 {
		t.Errorf("failed, dropped = %d, %d, want 0, 0", n.Failed(), n.Dropped())
	}
	if strings.Contains(logs.String(), canary) {
		t.Errorf("logs carry the URL's path or query:\n%s", logs.String())
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	rcv := &receiver{t: t, status: http.StatusBadRequest}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	var logs syncBuffer
	n := newTestNotifier(t, Config{URL: srv.URL + "/hooks/" + canary}, &logs)
	stop := start(t, n)
	n.Notify(alert.Alert{Name: alert.LagWarning, Target: "r1", Firing: true})
	fakes.WaitFor(t.Context(), t, 10*time.Second, "failure", func() bool { return n.Failed() == 1 })
	stop()
	if got := rcv.requests(); got != 1 {
		t.Errorf("requests = %d, want 1 (400 is not retried)", got)
	}
	l := logs.String()
	if !strings.Contains(l, "400") || !strings.Contains(l, "alert not delivered") {
		t.Errorf("logs do not report the 400:\n%s", l)
	}
	if strings.Contains(l, canary) {
		t.Errorf("logs carry the URL's path:\n%s", l)
	}
}

func TestReceiverDownDropsWithoutBlocking(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hooks/" + canary + "?key=" + canary
	srv.Close() // connections are refused from now on
	var logs syncBuffer
	n := newTestNotifier(t, Config{URL: url, QueueSize: 2, RetryMax: 100, RetryWaitMin: 20 * time.Millisecond,
		RetryWaitMax: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, DrainTimeout: 50 * time.Millisecond}, &logs)
	stop := start(t, n)

	const alerts = 50
	begin := time.Now()
	for i := range alerts {
		n.Notify(alert.Alert{Name: alert.TargetDown, Target: "r" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Firing: true})
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("%d Notify calls took %s, want no blocking", alerts, d)
	}
	// At most the queue plus the one Run is sending are not dropped.
	if got := n.Dropped(); got < alerts-3 {
		t.Errorf("dropped = %d, want at least %d", got, alerts-3)
	}
	stop()
	if n.Sent() != 0 {
		t.Errorf("sent = %d, want 0", n.Sent())
	}
	if n.Failed()+n.Dropped() != alerts {
		t.Errorf("failed %d + dropped %d, want %d", n.Failed(), n.Dropped(), alerts)
	}
	l := logs.String()
	if !strings.Contains(l, "alert not delivered") {
		t.Errorf("no delivery failure logged:\n%s", l)
	}
	if strings.Contains(l, canary) {
		t.Errorf("logs carry the URL's path or query:\n%s", l)
	}
}

func TestFormats(t *testing.T) {
	a := alert.Alert{Name: "lag_critical", Target: "r1", Severity: "critical", Summary: "r1 lags", Firing: true,
		StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r := a
	r.Firing, r.EndedAt = false, a.StartedAt.Add(time.Hour)
	tests := []struct {
		name string
		give Format
		in   alert.Alert
		want string
	}{
		{"walprobe firing", FormatWalprobe, a, `{"version":"1","status":"firing","alert":"lag_critical","target":"r1","severity":"critical","summary":"r1 lags","started_at":"2026-01-02T03:04:05Z"}`},
		{"walprobe resolved", FormatWalprobe, r, `{"version":"1","status":"resolved","alert":"lag_critical","target":"r1","severity":"critical","summary":"r1 lags","started_at":"2026-01-02T03:04:05Z","ended_at":"2026-01-02T04:04:05Z"}`},
		{"alertmanager firing", FormatAlertmanager, a, `[{"labels":{"alertname":"lag_critical","severity":"critical","source":"walprobe","target":"r1"},"annotations":{"summary":"r1 lags"},"startsAt":"2026-01-02T03:04:05Z"}]`},
		{"alertmanager resolved", FormatAlertmanager, r, `[{"labels":{"alertname":"lag_critical","severity":"critical","source":"walprobe","target":"r1"},"annotations":{"summary":"r1 lags"},"startsAt":"2026-01-02T03:04:05Z","endsAt":"2026-01-02T04:04:05Z"}]`},
		{"slack", FormatSlack, a, `{"text":"[FIRING] lag_critical r1 (critical): r1 lags"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := body(tt.give, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("body = %s\nwant   %s", got, tt.want)
			}
		})
	}
}

func TestSign(t *testing.T) {
	// printf '{}' | openssl dgst -sha256 -hmac s3cret
	const want = "sha256=adbde1ce40c89c14215687d5d762a47df6dfaefcfad61e2e86718ffc8498571b"
	got := Sign([]byte(secret), []byte("{}"))
	if got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
	if !Verify([]byte(secret), []byte("{}"), got) || Verify([]byte("other"), []byte("{}"), got) {
		t.Error("Verify does not match Sign")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		give Config
		want []string
	}{
		{"valid", Config{URL: "https://hooks.example.com/x?token=" + canary}, nil},
		{"all bad", Config{URL: "ftp://h/" + canary, Format: "xml", QueueSize: -1, RetryMax: -1},
			[]string{"webhook url", "format \"xml\"", "queue size -1", "retries -1"}},
		{"relative", Config{URL: "/hook/" + canary}, []string{"webhook url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.give.Defaults()
			err := tt.give.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want %q in it", err, w)
				}
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("Validate() = %q carries the URL path", err)
			}
		})
	}
}

// TestShutdownFlushBounded: an alert in flight when Run's context ends is
// still delivered by a slow receiver, and a receiver that never answers
// holds Run up for DrainTimeout at most.
func TestShutdownFlushBounded(t *testing.T) {
	t.Run("slow receiver gets the alert in flight", func(t *testing.T) {
		var got atomic.Int64
		inFlight := make(chan struct{}, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inFlight <- struct{}{}
			time.Sleep(300 * time.Millisecond)
			got.Add(1)
		}))
		defer srv.Close()
		n := newTestNotifier(t, Config{URL: srv.URL, DrainTimeout: 2 * time.Second}, io.Discard)
		stop := start(t, n)
		n.Notify(alert.Alert{Name: alert.TargetDown, Target: "r1", Firing: true})
		<-inFlight
		begin := time.Now()
		stop()
		if d := time.Since(begin); d > 1500*time.Millisecond {
			t.Errorf("Run returned %s after cancel, want once the 300ms answer came", d)
		}
		if got.Load() != 1 || n.Sent() != 1 {
			t.Errorf("receiver got %d, sent = %d, want 1 and 1", got.Load(), n.Sent())
		}
	})
	t.Run("blackholed receiver", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var conns []net.Conn
		accepted := make(chan struct{}, 16)
		acceptDone := make(chan struct{})
		go func() {
			defer close(acceptDone)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns = append(conns, c) // held open, never read
				accepted <- struct{}{}
			}
		}()
		const drain = 300 * time.Millisecond
		n := newTestNotifier(t, Config{URL: "http://" + ln.Addr().String() + "/hook", Timeout: time.Minute, DrainTimeout: drain}, io.Discard)
		stop := start(t, n)
		for _, r := range []string{"r1", "r2", "r3"} {
			n.Notify(alert.Alert{Name: alert.TargetDown, Target: r, Firing: true})
		}
		<-accepted
		begin := time.Now()
		stop()
		d := time.Since(begin)
		if d < drain-50*time.Millisecond || d > drain+time.Second {
			t.Errorf("Run returned %s after cancel, want about DrainTimeout %s", d, drain)
		}
		if n.Sent() != 0 || n.Failed() != 3 {
			t.Errorf("sent %d, failed %d, want 0 and 3", n.Sent(), n.Failed())
		}
		_ = ln.Close()
		<-acceptDone
		for _, c := range conns {
			_ = c.Close()
		}
	})
}
