package fakes

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// OTLP is an OTLP/HTTP collector (httptest) that accepts every export and
// keeps each body, gunzipped: protobuf carries strings as raw bytes, so a
// substring search finds a password in a span attribute or a metric label.
type OTLP struct {
	// URL is the collector's base URL (pass it as --otlp-endpoint).
	URL string

	srv *httptest.Server

	mu   sync.Mutex // guards reqs
	reqs []Request
}

// NewOTLP starts a collector, closed when the test ends.
func NewOTLP(t testing.TB) *OTLP {
	t.Helper()
	o := &OTLP{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			defer zr.Close()
			body = zr
		}
		b, _ := io.ReadAll(body)
		o.mu.Lock()
		o.reqs = append(o.reqs, Request{Path: r.URL.Path, Header: r.Header.Clone(), Body: b})
		o.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	o.URL = o.srv.URL
	t.Cleanup(o.srv.Close)
	return o
}

// Requests returns every export so far (Body decompressed).
func (o *OTLP) Requests() []Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Request(nil), o.reqs...)
}
