package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink"
)

// Server answers HAProxy agent checks for the probe's targets.
type Server struct {
	sink.Listener
	maxLag time.Duration
	p      *probe.Probe
	logger *slog.Logger
}

// readTimeout bounds how long a check may take to send the name: HAProxy
// sends agent-send right after connecting, and its own "timeout check"
// is usually a second or two.
const readTimeout = 2 * time.Second

// New returns an agent for addr that judges lag against maxLag (the
// probe's lag threshold when 0).
func New(addr string, maxLag time.Duration, p *probe.Probe, logger *slog.Logger) (*Server, error) {
	if maxLag < 0 {
		return nil, fmt.Errorf("agent max lag %s: must be positive", maxLag)
	}
	if maxLag == 0 {
		maxLag = p.Config().LagThreshold
	}
	return &Server{Listener: sink.NewListener(addr), maxLag: maxLag, p: p, logger: logger.With("component", "agent")}, nil
}

// Run answers checks until ctx ends, then closes the listener and waits
// for the checks in flight.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.logger.Info("serving haproxy agent checks", "addr", s.Addr(), "max_lag", s.maxLag)
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = s.Net().Close() })
	defer stop()
	for {
		conn, err := s.Net().Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("agent accept on %s: %w", s.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serve(conn)
		}()
	}
}

// serve answers one check: read the name line, write the reply, close.
func (s *Server) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(readTimeout))
	line, err := bufio.NewReaderSize(conn, 256).ReadString('\n')
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	if err != nil && line == "" {
		// No agent-send: HAProxy sent nothing, so there is no name to
		// answer for. Say so in the server's check status.
		_, _ = conn.Write([]byte("down #walprobe: no target name: add agent-send \"NAME\\n\" to the server line\n"))
		return
	}
	name := strings.TrimSpace(line)
	var ts probe.TargetSnapshot
	found := false
	if _, ok := s.p.Target(name); ok {
		for _, t := range s.p.Snapshot().Targets {
			if t.Name == name {
				ts, found = t, true
				break
			}
		}
	}
	reply := Reply(ts, found, s.maxLag)
	s.logger.Debug("agent check", "target", name, "reply", strings.TrimSpace(reply))
	_, _ = conn.Write([]byte(reply))
}

// Reply is the agent's answer for one target snapshot (found false: no
// target has the name HAProxy sent); it is pure so the rules are testable
// without a server. Every reply is one line:
//
//   - lag ≤ maxLag/4: "up ready 100%";
//   - maxLag/4 < lag ≤ maxLag: "up ready N%", N falling linearly from 100
//     to 1 at maxLag (HAProxy scales the server's configured weight, so
//     give servers "weight 100");
//   - lag > maxLag, lag not measured yet (connecting), or promoted:
//     "drain" (no new connections; sessions stay);
//   - down, or an unknown name: "down #reason";
//   - unknown (the primary cannot be written and the target had shown
//     every acked beat): "up ready 100%", the same default as the ready
//     endpoint: the replicas are all the application has left.
//
// "ready" with every up reply undoes an earlier drain: HAProxy leaves an
// administrative state set by the agent until the agent itself clears it.
// The reply after '#' is shown on HAProxy's stats page; it is ASCII.
func Reply(ts probe.TargetSnapshot, found bool, maxLag time.Duration) string {
	switch {
	case !found:
		return "down #walprobe: no target by this name (agent-send must be the walprobe target name)\n"
	case ts.State == probe.StateDown:
		return "down #walprobe: target down\n"
	case ts.State == probe.StatePromoted:
		return "drain #walprobe: promoted, no longer a replica\n"
	case ts.State == probe.StateUnknown:
		return "up ready 100% #walprobe: lag unknown, primary cannot be written\n"
	case ts.State == probe.StateConnecting || ts.Lag == nil:
		return "drain #walprobe: not measured yet\n"
	case *ts.Lag > maxLag:
		return fmt.Sprintf("drain #walprobe: lag %.3fs over %s\n", ts.Lag.Seconds(), maxLag)
	}
	return fmt.Sprintf("up ready %d%%\n", Weight(*ts.Lag, maxLag))
}

// Weight is the percentage of its configured weight a server gets at lag
// (lag ≤ maxLag): 100 up to a quarter of maxLag, then falling linearly to
// 1 at maxLag. Never 0: an "up" server with weight 0 takes no traffic
// without saying why; above the bound the reply is drain instead.
func Weight(lag, maxLag time.Duration) int {
	q := maxLag / 4
	if lag <= q {
		return 100
	}
	f := float64(lag-q) / float64(maxLag-q)
	return min(100, max(1, int(math.Round(100-99*f))))
}
