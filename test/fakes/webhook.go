package fakes

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Webhook is a webhook endpoint (httptest) that keeps every request. With
// a secret, it checks each X-Walprobe-Signature and fails the test on a
// bad one.
type Webhook struct {
	// URL is the endpoint's base URL; any path under it is accepted.
	URL string

	srv    *httptest.Server
	secret string
	status int

	mu   sync.Mutex // guards reqs
	reqs []Request
}

// Request is one request a receiver got.
type Request struct {
	Path   string
	Header http.Header
	Body   []byte
}

// WebhookOption configures NewWebhook.
type WebhookOption func(*Webhook)

// WithSecret makes the receiver check every signature against secret.
func WithSecret(secret string) WebhookOption { return func(w *Webhook) { w.secret = secret } }

// WithStatus makes the receiver answer status (default 204).
func WithStatus(status int) WebhookOption { return func(w *Webhook) { w.status = status } }

// NewWebhook starts a receiver, closed when the test ends.
func NewWebhook(t testing.TB, opts ...WebhookOption) *Webhook {
	t.Helper()
	wh := &Webhook{status: http.StatusNoContent}
	for _, o := range opts {
		o(wh)
	}
	wh.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if wh.secret != "" {
			m := hmac.New(sha256.New, []byte(wh.secret))
			m.Write(body)
			if r.Header.Get("X-Walprobe-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
				t.Errorf("webhook: bad signature on %s", body)
			}
		}
		wh.mu.Lock()
		wh.reqs = append(wh.reqs, Request{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		wh.mu.Unlock()
		w.WriteHeader(wh.status)
	}))
	wh.URL = wh.srv.URL
	t.Cleanup(wh.srv.Close)
	return wh
}

// Requests returns every request so far.
func (wh *Webhook) Requests() []Request {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return append([]Request(nil), wh.reqs...)
}

// Bodies returns every body so far, raw, one per line.
func (wh *Webhook) Bodies() string {
	var b strings.Builder
	for _, r := range wh.Requests() {
		b.Write(r.Body)
		b.WriteByte('\n')
	}
	return b.String()
}

// Payloads returns every body that is a JSON object, decoded.
func (wh *Webhook) Payloads() []map[string]any {
	var out []map[string]any
	for _, r := range wh.Requests() {
		var p map[string]any
		if json.Unmarshal(r.Body, &p) == nil {
			out = append(out, p)
		}
	}
	return out
}

// Count returns how many payloads for alert on target had status.
func (wh *Webhook) Count(alert, target, status string) int {
	n := 0
	for _, p := range wh.Payloads() {
		if p["alert"] == alert && p["target"] == target && p["status"] == status {
			n++
		}
	}
	return n
}

// ForTarget returns every payload about target.
func (wh *Webhook) ForTarget(target string) []map[string]any {
	var out []map[string]any
	for _, p := range wh.Payloads() {
		if p["target"] == target {
			out = append(out, p)
		}
	}
	return out
}
