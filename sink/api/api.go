// Package api serves walprobe's HTTP surface: the status page at /,
// /metrics (Prometheus text), /v1/state (JSON), /healthz (the process
// serves) and /readyz (the probe is writing beats). Extra routes (history,
// readiness per target) are added with Handle.
//
// Nothing it serves carries a DSN or a password: targets are named by
// their configured names and the state is built from probe snapshots.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink"
)

// Server is the HTTP server.
type Server struct {
	sink.Listener
	mux    *http.ServeMux
	logger *slog.Logger
}

// New returns a server for addr that serves p's state and the given
// /metrics handler.
func New(addr string, p *probe.Probe, metrics http.Handler, logger *slog.Logger) *Server {
	s := &Server{Listener: sink.NewListener(addr), mux: http.NewServeMux(), logger: logger.With("component", "http")}
	s.mux.Handle("GET /metrics", metrics)
	s.mux.HandleFunc("GET /v1/state", func(w http.ResponseWriter, r *http.Request) {
		sink.WriteJSON(w, http.StatusOK, toState(p.Snapshot()))
	})
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.Handle(ReadyzPattern, Readyz(p))
	s.mux.Handle(StatusPattern, Status())
	return s
}

// Handle adds a route (a net/http ServeMux pattern).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Run serves until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.Net()) }()
	s.logger.Info("serving", "addr", s.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
