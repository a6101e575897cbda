package probe

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

// How a read endpoint finds every server behind it.
//
// A pooler that balances each query (pgbouncer with a host list and
// server_round_robin, pgpool-II with statement-level load balancing) shows
// every server to one connection: successive polls land on different
// servers. A TCP load balancer (HAProxy mode tcp, a Kubernetes Service, a
// cloud network load balancer) and a DNS name with several addresses hand
// each *connection* to one server, so one connection sees one server for
// its whole life. So the reader keeps one connection per address the host
// resolves to, and tries new connections, one per interval, keeping each
// that lands on a server no connection has answered from recently, until
// three tries per known server in a row bring nothing new. It tries again
// every recheckEvery, and at once when one of its extra connections ends.
// With n servers behind a round-robin balancer every one is found within
// about 4·n intervals; a random balancer takes longer on average and is
// still re-checked every recheckEvery.
const (
	recheckEvery   = 5 * time.Minute
	maxConnections = 8 // per address: bounds what the probe holds open
)

// runEndpoint runs one lane per address of the endpoint's host.
func (r *Reader) runEndpoint(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, cfg := range perAddress(ctx, r.cfg.Conn) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.lane(ctx, cfg)
		}()
	}
	wg.Wait()
	return nil
}

// perAddress returns one config per address cfg.Host resolves to (cfg
// itself for an IP address, a Unix socket, or a name with one address).
// TLS keeps verifying the name the user gave.
func perAddress(ctx context.Context, cfg *pgx.ConnConfig) []*pgx.ConnConfig {
	host := cfg.Host
	if host == "" || host[0] == '/' || net.ParseIP(host) != nil {
		return []*pgx.ConnConfig{cfg}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(rctx, host)
	if err != nil || len(addrs) < 2 {
		return []*pgx.ConnConfig{cfg} // the connect reports a failure
	}
	out := make([]*pgx.ConnConfig, 0, len(addrs))
	for _, a := range addrs {
		c := cfg.Copy()
		c.Host = a
		c.Fallbacks = nil
		out = append(out, c)
	}
	return out
}

// clone returns a reader on the same target for another connection, with
// its own schedule and the shared poll counter.
func (r *Reader) clone(cfg *pgx.ConnConfig) *Reader {
	c := *r
	c.cfg.Conn = cfg
	c.sched = newSchedule(r.cfg.Interval)
	c.prevStart, c.server = time.Time{}, ""
	return &c
}

// lane polls one address: a reconnecting main connection, plus the extra
// connections discovery keeps.
func (r *Reader) lane(ctx context.Context, cfg *pgx.ConnConfig) {
	var wg sync.WaitGroup
	defer wg.Wait()
	main := r.clone(cfg)
	wg.Add(1)
	go func() { defer wg.Done(); _ = main.run(ctx) }()

	ended := make(chan struct{}, maxConnections)
	extra := 0
	misses := 0
	timer := time.NewTimer(r.cfg.Interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ended:
			extra--
			misses = 0 // a server may have lost its connection: look again
			continue
		case <-timer.C:
		}
		next := max(r.cfg.Interval, 200*time.Millisecond)
		if extra < maxConnections-1 {
			if conn, ok := r.tryConnection(ctx, cfg); ok {
				extra++
				misses = 0
				sub := r.clone(cfg)
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := sub.session(ctx, conn)
					closeConn(conn)
					if ctx.Err() == nil {
						sub.logger.Debug("extra endpoint connection ended", "error", errString(err))
					}
					ended <- struct{}{}
				}()
			} else {
				misses++
			}
		}
		if misses >= 3*max(1, r.target.recentBackends()) || extra >= maxConnections-1 {
			misses = 0
			next = recheckEvery
		}
		timer.Reset(next)
	}
}

// tryConnection opens a connection and keeps it when its first answer
// comes from a server no connection has answered from recently.
func (r *Reader) tryConnection(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, bool) {
	conn, err := pgconf.Connect(ctx, r.cfg.Name, cfg)
	if err != nil {
		return nil, false
	}
	qctx, cancel := context.WithTimeout(ctx, r.pollTimeout())
	defer cancel()
	var server string
	if err := conn.QueryRow(qctx, "SELECT "+serverSQL).Scan(&server); err != nil || r.target.answeredRecently(server) {
		closeConn(conn)
		return nil, false
	}
	return conn, true
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// recentBackends counts the servers that answered within the window.
func (t *Target) recentBackends() int {
	now := t.p.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, b := range t.backends {
		if now.Sub(b.lastAnswer) <= t.p.backendWindow() {
			n++
		}
	}
	return n
}

// answeredRecently reports whether server answered within the window.
func (t *Target) answeredRecently(server string) bool {
	now := t.p.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.backends[server]
	return ok && now.Sub(b.lastAnswer) <= t.p.backendWindow()
}

// LastSeenOf returns the highest seq server, behind this endpoint, has
// shown, and whether it has answered a poll since it was (re)placed.
func (t *Target) LastSeenOf(server string) (int64, bool) {
	t.mu.Lock()
	b, ok := t.backends[server]
	t.mu.Unlock()
	if !ok {
		return 0, false
	}
	return b.t.LastSeen()
}
