package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/walprobe/walprobe/sink/alert"
)

// Notifier sends alerts to one webhook.
type Notifier struct {
	cfg    Config
	host   string // the only part of the URL that is ever logged
	client *retryablehttp.Client
	logger *slog.Logger
	now    func() time.Time

	queue                 chan alert.Alert
	dropped, sent, failed atomic.Int64

	mu     sync.Mutex             // guards firing
	firing map[string]alert.Alert // alert key → the firing alert
}

// New validates cfg and returns a Notifier.
func New(cfg Config, logger *slog.Logger) (*Notifier, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL) // validated
	n := &Notifier{
		cfg: cfg, host: u.Host, now: time.Now,
		logger: logger.With("component", "webhook", "host", u.Host),
		queue:  make(chan alert.Alert, cfg.QueueSize),
		firing: map[string]alert.Alert{},
	}
	c := retryablehttp.NewClient()
	c.HTTPClient.Timeout = cfg.Timeout
	c.RetryMax = cfg.RetryMax
	c.RetryWaitMin, c.RetryWaitMax = cfg.RetryWaitMin, cfg.RetryWaitMax
	c.CheckRetry = checkRetry
	c.Backoff = jitterBackoff
	// The default handler's error quotes the whole URL; pass the last
	// response or error through and name the host ourselves.
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c.Logger = leveledLogger{n.logger}
	n.client = c
	return n, nil
}

// checkRetry retries timeouts and other transport errors, 429 and 5xx
// (but 501), and nothing else: another 4xx will fail the same way again.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		// Retries timeouts and refused or reset connections; not TLS
		// certificate, scheme or redirect-loop errors.
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	switch c := resp.StatusCode; {
	case c == http.StatusTooManyRequests:
		return true, nil
	case c >= 500 && c != http.StatusNotImplemented:
		return true, nil
	}
	return false, nil
}

// jitterBackoff doubles from lo up to hi and waits a random time in the
// upper half of that, so many probes do not retry in step; it honours a
// Retry-After in seconds on 429 and 503, capped at hi.
func jitterBackoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			return min(time.Duration(s)*time.Second, hi)
		}
	}
	d := hi
	if attempt < 30 {
		d = min(lo<<attempt, hi)
	}
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// Notify queues a firing alert unless the same key is already firing, or
// a resolved one if its key is firing; it never blocks. It reports whether
// the alert was queued. When the queue is full the alert is dropped and
// counted, and the key keeps its previous state so a repeat can retry.
func (n *Notifier) Notify(a alert.Alert) bool {
	k := a.Key()
	n.mu.Lock()
	defer n.mu.Unlock()
	prev, was := n.firing[k]
	if a.Firing == was {
		return false // already firing, or nothing to resolve
	}
	if a.Firing {
		if a.StartedAt.IsZero() {
			a.StartedAt = n.now()
		}
		n.firing[k] = a
	} else {
		if a.StartedAt.IsZero() {
			a.StartedAt = prev.StartedAt
		}
		if a.EndedAt.IsZero() {
			a.EndedAt = n.now()
		}
		delete(n.firing, k)
	}
	select {
	case n.queue <- a:
		return true
	default:
		if a.Firing {
			delete(n.firing, k)
		} else {
			n.firing[k] = prev
		}
		n.dropped.Add(1)
		n.logger.Debug("webhook queue full: alert dropped", "alert", a.Name, "target", a.Target, "status", a.Status())
		return false
	}
}

// Dropped is the number of alerts dropped on a full queue.
func (n *Notifier) Dropped() int64 { return n.dropped.Load() }

// Sent is the number of notifications the receiver accepted (2xx).
func (n *Notifier) Sent() int64 { return n.sent.Load() }

// Failed is the number of notifications given up on.
func (n *Notifier) Failed() int64 { return n.failed.Load() }

// Run sends queued alerts until ctx ends,
// then spends up to DrainTimeout sending what is still queued, and returns
// nil. An alert in flight when ctx ends shares that budget instead of
// being cut off: a slow receiver still gets it, a receiver that never
// answers delays Run's return by DrainTimeout at most.
func (n *Notifier) Run(ctx context.Context) error {
	defer n.client.HTTPClient.CloseIdleConnections()
	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSend()
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(n.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelSend()
		case <-sendCtx.Done(): // Run returned
		}
	})
	defer stop()
	for {
		select {
		case <-ctx.Done():
			n.drain(sendCtx)
			return nil
		case a := <-n.queue:
			n.send(sendCtx, a)
		}
	}
}

// drain sends what is queued until ctx (DrainTimeout after Run's context
// ended) is done; what is left then fails at once and is counted.
func (n *Notifier) drain(ctx context.Context) {
	for {
		select {
		case a := <-n.queue:
			n.send(ctx, a)
		default:
			return
		}
	}
}

// send posts one alert, retrying as checkRetry decides.
func (n *Notifier) send(ctx context.Context, a alert.Alert) {
	err := n.post(ctx, a)
	if err != nil {
		n.failed.Add(1)
		n.logger.Warn("alert not delivered", "alert", a.Name, "target", a.Target, "status", a.Status(), "error", hostOnly(err.Error()))
		return
	}
	n.sent.Add(1)
	n.logger.Debug("alert delivered", "alert", a.Name, "target", a.Target, "status", a.Status())
}

// errStatus is a final non-2xx answer.
var errStatus = errors.New("webhook answered with an error status")

func (n *Notifier) post(ctx context.Context, a alert.Alert) error {
	b, err := body(n.cfg.Format, a)
	if err != nil {
		return err
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, n.cfg.URL, b)
	if err != nil {
		// The error may quote the URL: keep only its kind.
		return fmt.Errorf("build request to %s: invalid request", n.host)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "walprobe")
	if n.cfg.Secret != "" {
		req.Header.Set(SignatureHeader, Sign([]byte(n.cfg.Secret), b))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// url.Error quotes the whole URL; its Err names host:port only.
			return fmt.Errorf("post to %s: %s", n.host, hostOnly(ue.Err.Error()))
		}
		return fmt.Errorf("post to %s: %s", n.host, hostOnly(err.Error()))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post to %s: %d %s: %w", n.host, resp.StatusCode, http.StatusText(resp.StatusCode), errStatus)
	}
	return nil
}
