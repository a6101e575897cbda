package probe

import (
	"slices"
	"time"
)

// A read endpoint (pgbouncer with a host list, pgpool-II with load
// balancing, a TCP load balancer, a DNS name with several addresses) hands
// successive queries or connections to different servers. An application
// reading through it can land on any of them, so the endpoint is as stale
// as the worst server behind it that answered recently. Each server gets
// its own position, bracket and lag (a child Target, never registered with
// the probe and never reported as a target of its own); the endpoint's
// lag is the worst of those that answered within backendWindow.

// maxBackends bounds how many servers one endpoint tracks; past it the one
// that answered longest ago is forgotten.
const maxBackends = 16

// backend is one server behind an endpoint.
type backend struct {
	t *Target
	// prevStart is the start of the latest poll this server answered:
	// the lower end of the next bracket it shows a beat in.
	prevStart  time.Time
	lastAnswer time.Time
}

// backendWindow is how recently a server must have answered to count in
// the endpoint's lag: max(10 s, 10 intervals).
func (p *Probe) backendWindow() time.Duration { return max(10*time.Second, 10*p.cfg.Interval) }

// children returns an endpoint's backend targets (nil for other kinds).
func (t *Target) children() []*Target {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.backends) == 0 {
		return nil
	}
	out := make([]*Target, 0, len(t.backends))
	for _, b := range t.backends {
		out = append(out, b.t)
	}
	return out
}

// SeenFrom reports that a poll of a read endpoint, sent at start and
// answered at end, was answered by server and showed seq. The bracket is
// that server's own: from the start of the previous poll it answered.
func (t *Target) SeenFrom(server string, seq int64, start, end time.Time) (Visibility, bool) {
	t.mu.Lock()
	if t.backends == nil {
		t.backends = map[string]*backend{}
	}
	b, ok := t.backends[server]
	if !ok {
		if len(t.backends) == maxBackends {
			t.evictOldestLocked()
		}
		b = &backend{t: &Target{name: t.name, kind: t.kind, p: t.p, parent: t, server: server, state: StateConnecting, since: end}}
		t.backends[server] = b
	}
	lower := b.prevStart
	if lower.IsZero() {
		lower = start
	}
	b.prevStart, b.lastAnswer = start, end
	// The endpoint's own position is the server that answered last: the
	// reader schedules its next poll from it.
	t.known, t.lastSeen, t.lastSeenAt = true, seq, end
	if t.state != StateDown {
		t.lastErr = ""
	}
	t.mu.Unlock()
	before := b.t.timedCount()
	v, timed := b.t.Seen(seq, lower, end)
	if n := b.t.timedCount() - before; n > 0 {
		t.mu.Lock()
		t.visible += n
		if timed {
			t.lastVis = &v
		}
		t.mu.Unlock()
	}
	t.evaluate()
	return v, timed
}

func (t *Target) timedCount() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.visible
}

func (t *Target) evictOldestLocked() {
	var oldest string
	for srv, b := range t.backends {
		if oldest == "" || b.lastAnswer.Before(t.backends[oldest].lastAnswer) {
			oldest = srv
		}
	}
	delete(t.backends, oldest)
}

// forgetBackends makes every backend re-learn its position after the
// endpoint was down: beats are not timed across the gap. Each keeps its
// oldest unshown beat, so its lag goes on counting from it.
func (t *Target) forgetBackends() {
	for _, c := range t.children() {
		c.mu.Lock()
		c.known = false
		c.mu.Unlock()
	}
	t.mu.Lock()
	for _, b := range t.backends {
		b.prevStart = time.Time{}
	}
	t.mu.Unlock()
}

// endpointLagLocked is the worst lag among the servers that answered
// within backendWindow (all of them when none did). Unknown when every
// one of those is unknown (the writer cannot write); a known lag beats an
// unknown one, since a server already behind is behind whatever else is
// unknown. t.mu is held; each child's own lock is taken (parent before
// child, never the other way).
func (t *Target) endpointLagLocked(now time.Time) (lag, bound time.Duration, ok bool) {
	window := t.p.backendWindow()
	recent := make([]*backend, 0, len(t.backends))
	for _, b := range t.backends {
		if now.Sub(b.lastAnswer) <= window {
			recent = append(recent, b)
		}
	}
	if len(recent) == 0 {
		for _, b := range t.backends {
			recent = append(recent, b)
		}
	}
	any := false
	for _, b := range recent {
		b.t.mu.Lock()
		known := b.t.known || b.t.pendSeq != 0
		var l, ub time.Duration
		var lok bool
		if known {
			l, ub, lok = b.t.lagLocked(now)
		}
		b.t.mu.Unlock()
		switch {
		case !known:
		case lok:
			lag, ok, any = max(lag, l), true, true
		case !ok:
			bound, any = max(bound, ub), true
		}
	}
	if !any {
		return 0, 0, true
	}
	if ok {
		bound = 0
	}
	return lag, bound, ok
}

// BackendSnapshot is one server behind a read endpoint.
type BackendSnapshot struct {
	Server string // address:port as the server reported it
	State  State
	// Lag is nil until the server has answered since (re)placed, and while
	// it is unknown.
	Lag        *time.Duration
	LastSeq    *int64
	LastAnswer time.Time
	// Recent is whether it answered within max(10 s, 10 intervals) and so
	// counts in the endpoint's lag.
	Recent bool
}

// backendsLocked lists an endpoint's servers, worst lag first. t.mu is held.
func (t *Target) backendsLocked(now time.Time) []BackendSnapshot {
	if len(t.backends) == 0 {
		return nil
	}
	window := t.p.backendWindow()
	out := make([]BackendSnapshot, 0, len(t.backends))
	for srv, b := range t.backends {
		b.t.mu.Lock()
		bs := BackendSnapshot{Server: srv, State: b.t.state, LastAnswer: b.lastAnswer, Recent: now.Sub(b.lastAnswer) <= window}
		if b.t.known {
			if l, _, ok := b.t.lagLocked(now); ok {
				bs.Lag = durationPtr(l)
			}
			bs.LastSeq = new(b.t.lastSeen)
		}
		b.t.mu.Unlock()
		out = append(out, bs)
	}
	slices.SortFunc(out, func(a, b BackendSnapshot) int {
		la, lb := time.Duration(-1), time.Duration(-1)
		if a.Lag != nil {
			la = *a.Lag
		}
		if b.Lag != nil {
			lb = *b.Lag
		}
		switch {
		case la > lb:
			return -1
		case la < lb:
			return 1
		}
		if a.Server < b.Server {
			return -1
		}
		return 1
	})
	return out
}

// evaluateBackends moves each backend's own state along (silently: it
// shows in the endpoint's backend list only).
func (t *Target) evaluateBackends(now time.Time) {
	for _, c := range t.children() {
		c.evaluateAt(now)
	}
}
