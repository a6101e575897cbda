package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walprobe/walprobe/test/launch"
)

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
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

// walprobe is the walprobe binary running in a test (test/launch).
type walprobe struct{ *launch.Process }

// startWalprobe runs walprobe with args and extra environment until the
// test ends, and returns once it serves HTTP.
func startWalprobe(t *testing.T, env []string, args ...string) *walprobe {
	t.Helper()
	return &walprobe{launch.Start(context.Background(), t, launch.Options{Args: args, Env: env})}
}

// stop sends SIGTERM and waits; it is safe to call twice.
func (w *walprobe) stop(t *testing.T) {
	t.Helper()
	if _, err := w.Terminate(15 * time.Second); err != nil && launch.ExitCode(err) <= 0 {
		t.Errorf("walprobe: %v", err)
	}
}

// stdout is everything walprobe printed on stdout (--json lines).
func (w *walprobe) stdout() string { return strings.Join(w.Stdout(), "\n") + "\n" }

func (w *walprobe) get(path string) (string, error) {
	code, body, err := w.Get(context.Background(), path)
	if err == nil && code != 200 {
		err = fmt.Errorf("GET %s: status %d", path, code)
	}
	return body, err
}

// state is the part of /v1/state the suite reads.
type state struct {
	Beats       int64 `json:"beats"`
	BeatsMissed int64 `json:"beats_missed"`
	LastBeat    *struct {
		Seq      int64   `json:"seq"`
		WriteRTT float64 `json:"write_rtt_seconds"`
	} `json:"last_beat"`
	Primary struct {
		Up    bool   `json:"up"`
		Error string `json:"error"`
	} `json:"primary"`
	Targets []targetState `json:"targets"`
}

type targetState struct {
	Name       string   `json:"name"`
	State      string   `json:"state"`
	Lag        *float64 `json:"lag_seconds"`
	LagUpper   *float64 `json:"lag_upper_bound_seconds"`
	Delay      *float64 `json:"delay_seconds"`
	ErrorBound *float64 `json:"error_bound_seconds"`
	LastSeq    *int64   `json:"last_seen_seq"`
	BeatsTimed int64    `json:"beats_timed"`
	LastError  string   `json:"last_error"`
}

func (s state) target(name string) (targetState, bool) {
	for _, t := range s.Targets {
		if t.Name == name {
			return t, true
		}
	}
	return targetState{}, false
}

// sample is one /v1/state read.
type sample struct {
	at time.Time
	s  state
}

// sampler reads /v1/state every 100 ms for the whole run, keeps every
// sample, and collects every body it read for the secret scan.
type sampler struct {
	w      *walprobe
	mu     sync.Mutex
	all    []sample
	errs   []string
	bodies *corpus
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func newSampler(w *walprobe, bodies *corpus) *sampler {
	s := &sampler{w: w, bodies: bodies, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *sampler) run() {
	defer close(s.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		body, err := s.w.get("/v1/state")
		if err != nil {
			s.mu.Lock()
			s.errs = append(s.errs, err.Error())
			s.mu.Unlock()
			continue
		}
		s.bodies.add("/v1/state", body)
		var st state
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			s.mu.Lock()
			s.errs = append(s.errs, "bad /v1/state: "+err.Error())
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		s.all = append(s.all, sample{at: time.Now(), s: st})
		s.mu.Unlock()
		// /metrics and /v1/history every second: they go into the scan.
		if n++; n%10 == 0 {
			if m, err := s.w.get("/metrics"); err == nil {
				s.bodies.add("/metrics", m)
			}
			for _, tg := range st.Targets {
				if h, err := s.w.get("/v1/history?target=" + tg.Name + "&since=30s&points=30"); err == nil {
					s.bodies.add("/v1/history", h)
				}
			}
		}
	}
}

func (s *sampler) close() { s.once.Do(func() { close(s.stop) }); <-s.done }

// mark returns a position in the sample list.
func (s *sampler) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

// since returns the samples taken after mark.
func (s *sampler) since(mark int) []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.all[mark:]...)
}

// latest returns the newest sample.
func (s *sampler) latest() state {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return state{}
	}
	return s.all[len(s.all)-1].s
}

// waitFor polls the newest sample until cond holds or d passes.
func (s *sampler) waitFor(t *testing.T, d time.Duration, what string, cond func(state) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !s.w.Running() {
			t.Fatalf("walprobe exited (%v) while waiting for %s:\n%s", s.w.Err(), what, tail(s.w.Logs(), 30))
		}
		if cond(s.latest()) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last state:\n%s", d, what, s.describe(s.latest()))
}

func (s *sampler) describe(st state) string {
	var b strings.Builder
	fmt.Fprintf(&b, "beats %d missed %d primary up %v %q\n", st.Beats, st.BeatsMissed, st.Primary.Up, st.Primary.Error)
	for _, t := range st.Targets {
		fmt.Fprintf(&b, "  %s: %s lag %s seq %v error %q\n", t.Name, t.State, fmtSecs(t.Lag), deref(t.LastSeq), t.LastError)
	}
	return b.String()
}

func fmtSecs(p *float64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprintf("%.3fs", *p)
}

func deref(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

// seqWentBack returns the places where the probe's newest beat seq
// decreased between two samples.
func seqWentBack(samples []sample) []string {
	var bad []string
	var prev int64
	for _, sm := range samples {
		if sm.s.LastBeat == nil {
			continue
		}
		if sm.s.LastBeat.Seq < prev {
			bad = append(bad, fmt.Sprintf("%d → %d at %s", prev, sm.s.LastBeat.Seq, sm.at.Format("15:04:05.000")))
		}
		prev = sm.s.LastBeat.Seq
	}
	return bad
}

// states returns the distinct consecutive states target went through in
// samples.
func states(samples []sample, target string) []string {
	var out []string
	for _, sm := range samples {
		if tg, ok := sm.s.target(target); ok && (len(out) == 0 || out[len(out)-1] != tg.State) {
			out = append(out, tg.State)
		}
	}
	return out
}

// hasSubsequence reports whether want appears in got in order (not
// necessarily adjacent).
func hasSubsequence(got []string, want ...string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// zeroLagWhileDown returns the samples in which target was down and its
// lag read 0 although the probe knew better: a newer beat was acked than
// the one the target last showed, or beats had been missed since the
// window began (the primary is out). Before either, 0 is the truth: the
// target had shown every beat there was.
func zeroLagWhileDown(samples []sample, target string) []string {
	var bad []string
	if len(samples) == 0 {
		return nil
	}
	missed0 := samples[0].s.BeatsMissed
	for _, sm := range samples {
		tg, ok := sm.s.target(target)
		if !ok || tg.State != "down" || tg.Lag == nil || *tg.Lag > 0 {
			continue
		}
		newer := sm.s.LastBeat != nil && tg.LastSeq != nil && sm.s.LastBeat.Seq > *tg.LastSeq
		if newer || sm.s.BeatsMissed > missed0 {
			bad = append(bad, fmt.Sprintf("%s (newest beat %v, shown %d, missed %d → %d)",
				sm.at.Format("15:04:05.000"), sm.s.LastBeat != nil && newer, deref(tg.LastSeq), missed0, sm.s.BeatsMissed))
		}
	}
	return bad
}

// maxUpper returns the largest lag upper bound target showed in samples
// (set while its lag is unknown).
func maxUpper(samples []sample, target string) float64 {
	m := -1.0
	for _, sm := range samples {
		if tg, ok := sm.s.target(target); ok && tg.LagUpper != nil && *tg.LagUpper > m {
			m = *tg.LagUpper
		}
	}
	return m
}

// maxLag returns the largest lag target showed in samples.
func maxLag(samples []sample, target string) float64 {
	m := -1.0
	for _, sm := range samples {
		if tg, ok := sm.s.target(target); ok && tg.Lag != nil && *tg.Lag > m {
			m = *tg.Lag
		}
	}
	return m
}

// corpus collects everything the probe emitted, for the secret scan.
type corpus struct {
	mu    sync.Mutex
	texts map[string]*strings.Builder
}

func newCorpus() *corpus { return &corpus{texts: map[string]*strings.Builder{}} }

func (c *corpus) add(where, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.texts[where]
	if b == nil {
		b = &strings.Builder{}
		c.texts[where] = b
	}
	// Keep memory bounded: identical /v1/state bodies repeat, and the
	// scan needs every distinct byte, so keep at most 64 MiB per source.
	if b.Len() < 64<<20 {
		b.WriteString(text)
		b.WriteByte('\n')
	}
}

// scan returns where each secret was found.
func (c *corpus) scan(secrets map[string]string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var hits []string
	for where, b := range c.texts {
		s := b.String()
		for name, sec := range secrets {
			if sec == "" {
				continue
			}
			if i := strings.Index(s, sec); i >= 0 {
				hits = append(hits, fmt.Sprintf("%s carries the %s password: …%s…", where, name, redactAround(s, i, len(sec))))
			}
		}
	}
	return hits
}

func (c *corpus) sizes() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, b := range c.texts {
		out[k] = b.Len()
	}
	return out
}

// redactAround shows the context of a hit without the secret itself.
func redactAround(s string, i, n int) string {
	lo, hi := max(0, i-60), min(len(s), i+n+60)
	return s[lo:i] + "<SECRET>" + s[i+n:hi]
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
