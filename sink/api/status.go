package api

import (
	_ "embed"
	"fmt"
	"net/http"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink"
)

// StatusPattern is the route Status serves: exactly "/", not every path
// ServeMux would otherwise send to a "/" pattern.
const StatusPattern = "GET /{$}"

// ReadyzPattern is the route Readyz serves.
const ReadyzPattern = "GET /readyz"

// statusHTML is the whole status page: HTML, CSS and one inline script
// that polls /v1/state and /v1/history and draws on <canvas>. It is
// embedded so the page needs no build step, no files next to the binary
// and no network beyond the probe itself.
//
//go:embed status.html
var statusHTML []byte

// statusCSP allows the inline script and style and fetches to this origin
// only: the page must work offline and must never load anything from
// elsewhere, and a target name or error text that looks like HTML can do
// nothing (the script also only ever sets textContent).
const statusCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Status serves the status page.
func Status() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", statusCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(statusHTML)
	})
}

// ReadyzBody is what /readyz answers, whatever the status.
type ReadyzBody struct {
	Ready bool `json:"ready"`
	// LastBeatAge is how long ago the newest beat was acked; null before
	// the first beat.
	LastBeatAge *sink.Seconds `json:"last_beat_age_seconds"`
	MaxAge      sink.Seconds  `json:"max_age_seconds"`
	Reason      string        `json:"reason"`
}

// ReadyzMaxAge is how old the newest beat may be for /readyz to answer
// 200: three intervals, so one slow or missed beat does not flap it, and
// at least 5 s, so a fast interval does not turn a short hiccup into an
// outage.
func ReadyzMaxAge(interval time.Duration) time.Duration {
	return max(3*interval, 5*time.Second)
}

// Readyz serves GET /readyz: 200 once the writer has committed a beat on
// the primary within ReadyzMaxAge, 503 before the first beat and while
// beats fail. /healthz differs: it answers 200 as long as the process
// serves HTTP. A Kubernetes livenessProbe belongs on /healthz (restarting
// walprobe does not bring a primary back), a readinessProbe on /readyz
// (a probe that cannot write beats has nothing current to show).
func Readyz(p *probe.Probe) http.Handler {
	maxAge := ReadyzMaxAge(p.Config().Interval)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var last *time.Time
		if b, ok := p.Ring().Newest(); ok {
			last = &b.Acked
		}
		b := readyz(last, time.Now(), maxAge)
		code := http.StatusOK
		if !b.Ready {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		sink.WriteJSON(w, code, b)
	})
}

// readyz decides from the newest beat's ack time (nil: none yet); it is
// pure so the rule is testable without a server or a clock.
func readyz(lastAcked *time.Time, now time.Time, maxAge time.Duration) ReadyzBody {
	b := ReadyzBody{MaxAge: sink.SecondsOf(maxAge)}
	if lastAcked == nil {
		b.Reason = "no beat written yet: waiting for the first commit on the primary"
		return b
	}
	age := max(now.Sub(*lastAcked), 0)
	b.LastBeatAge = sink.SecondsPtr(&age)
	if age > maxAge {
		b.Reason = fmt.Sprintf("last beat written %s ago, more than %s: the primary is not taking beats (see /v1/state primary.error)", age.Round(time.Millisecond), maxAge)
		return b
	}
	b.Ready = true
	b.Reason = fmt.Sprintf("last beat written %s ago", age.Round(time.Millisecond))
	return b
}
