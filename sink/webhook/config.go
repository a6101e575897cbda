package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Format is the shape of the request body.
type Format string

// Body formats.
const (
	FormatWalprobe     Format = "walprobe"     // {"version":"1","status":...}
	FormatAlertmanager Format = "alertmanager" // [{"labels":...,"annotations":...,"startsAt":...,"endsAt":...}]
	FormatSlack        Format = "slack"        // {"text": ...}
)

// Config configures a Notifier.
type Config struct {
	// URL receives a POST per notification. Its path and query are
	// treated as secret.
	URL string
	// Secret keys the HMAC-SHA256 signature; empty sends no signature.
	Secret string
	Format Format // default FormatWalprobe
	// QueueSize bounds the notifications waiting to be sent (default 64).
	QueueSize int
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	// RetryMax is the number of retries after the first attempt (default 4).
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the jittered backoff
	// (default 500ms and 30s).
	RetryWaitMin, RetryWaitMax time.Duration
	// DrainTimeout bounds sending what is in flight or still queued once
	// Run's context ends (default 5s): Run returns within it.
	DrainTimeout time.Duration
}

// Defaults fills zero fields.
func (c *Config) Defaults() {
	if c.Format == "" {
		c.Format = FormatWalprobe
	}
	if c.QueueSize == 0 {
		c.QueueSize = 64
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = 4
	}
	if c.RetryWaitMin == 0 {
		c.RetryWaitMin = 500 * time.Millisecond
	}
	if c.RetryWaitMax == 0 {
		c.RetryWaitMax = 30 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 5 * time.Second
	}
}

// Validate reports every bad field at once. Errors name the URL's host
// only.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// url.Parse errors quote the whole URL: do not wrap them.
		errs = append(errs, errors.New("webhook url: want an absolute http:// or https:// URL"))
	}
	switch c.Format {
	case FormatWalprobe, FormatAlertmanager, FormatSlack:
	default:
		errs = append(errs, fmt.Errorf("webhook format %q: want walprobe, alertmanager or slack", c.Format))
	}
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("webhook queue size %d: must be at least 1", c.QueueSize))
	}
	if c.RetryMax < 0 {
		errs = append(errs, fmt.Errorf("webhook retries %d: must not be negative", c.RetryMax))
	}
	if c.RetryWaitMin > c.RetryWaitMax {
		errs = append(errs, fmt.Errorf("webhook retry wait: min %s is over max %s", c.RetryWaitMin, c.RetryWaitMax))
	}
	return errors.Join(errs...)
}
