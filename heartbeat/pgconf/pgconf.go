package pgconf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Session limits applied to every probe connection. They make sure the
// probe never holds a lock or an open transaction for more than a moment.
const (
	StatementTimeout    = 5 * time.Second
	LockTimeout         = 1 * time.Second
	IdleInTxTimeout     = 1 * time.Second
	DefaultConnTimeout  = 5 * time.Second
	ApplicationNamePref = "walprobe"
)

// TCP keepalive defaults, overridden by the libpq DSN parameters
// keepalives, keepalives_idle, keepalives_interval and keepalives_count.
// libpq leaves the kernel's defaults (on Linux: first probe after 2 hours
// idle), longer than the idle timeout of most cloud load balancers and NAT
// gateways (AWS NLB 350 s, GCP 600 s, Azure 4 min): with these, an idle
// probe connection sends a probe every 15 s and a dead peer is noticed
// within 15 + 3×5 = 30 s.
const (
	DefaultKeepAliveIdle     = 15 * time.Second
	DefaultKeepAliveInterval = 5 * time.Second
	DefaultKeepAliveCount    = 3
)

// Parse parses a libpq-compatible DSN (URI or key=value; PG* environment
// variables and .pgpass apply) for the target called name. The returned
// config runs every query in simple protocol, so it works through
// transaction-pooling poolers (pgbouncer, pgpool) that break named
// prepared statements and session state.
func Parse(name, dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if hint := parseTLSHint(err); hint != "" {
		return nil, fmt.Errorf("%s: invalid DSN (%s): %s", name, Redact(dsn, reason(err)), hint)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: invalid DSN (%s): use a libpq URI (postgres://user@host:5432/db) or key=value pairs (host=... port=... dbname=...)", name, Redact(dsn, reason(err)))
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	// Simple protocol never uses pgx's statement or description caches;
	// with one connection per target they would only cost memory.
	cfg.StatementCacheCapacity, cfg.DescriptionCacheCapacity = 0, 0
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnTimeout
	}
	rp := cfg.RuntimeParams
	ka, err := keepAlive(rp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg.DialFunc = Dialer(cfg.ConnectTimeout, ka).DialContext
	if rp["application_name"] == "" {
		rp["application_name"] = ApplicationNamePref
	}
	setDefault(rp, "statement_timeout", fmt.Sprint(StatementTimeout.Milliseconds()))
	setDefault(rp, "lock_timeout", fmt.Sprint(LockTimeout.Milliseconds()))
	setDefault(rp, "idle_in_transaction_session_timeout", fmt.Sprint(IdleInTxTimeout.Milliseconds()))
	return cfg, nil
}

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// reason drops pgconn's echo of the connection string and keeps why it
// failed.
func reason(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) && pe.Unwrap() != nil {
		return pe.Unwrap().Error()
	}
	return err.Error()
}

var pwKV = regexp.MustCompile(`(?i)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// Redact removes every password the DSN carries from s.
func Redact(dsn, s string) string {
	pws := passwords(dsn)
	// Longest first: a decoded password can be a substring of its
	// encoded form, and replacing it first would leave the rest behind.
	sort.Slice(pws, func(i, j int) bool { return len(pws[i]) > len(pws[j]) })
	for _, pw := range pws {
		if pw != "" {
			s = strings.ReplaceAll(s, pw, "xxxxx")
		}
	}
	return s
}

func passwords(dsn string) []string {
	var out []string
	for _, m := range pwKV.FindAllStringSubmatch(dsn, -1) {
		out = append(out, strings.Trim(m[1], "'"))
	}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	}
	if i := strings.Index(dsn, "://"); i >= 0 {
		// Userinfo as written (percent-encoded, or unparseable): take it
		// by hand; url.Userinfo re-escapes differently.
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				out = append(out, rest[c+1:at])
			}
		}
		// ?password=... : pwKV above runs on to the next &.
		if q := strings.Index(rest, "?"); q >= 0 {
			for _, kv := range strings.Split(rest[q+1:], "&") {
				if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(k, "password") {
					out = append(out, v)
					if dv, err := url.QueryUnescape(v); err == nil {
						out = append(out, dv)
					}
				}
			}
		}
	}
	return out
}

// Addr describes where cfg points, for logs and labels: host:port/db,
// never the user's password.
func Addr(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("%s/%s", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), cfg.Database)
}

// Connect opens one connection and turns failures into an actionable error.
//
// Poolers such as pgbouncer refuse startup parameters they do not know
// (statement_timeout, lock_timeout, ...) and cannot keep session state
// in transaction pooling. When the server refuses one, Connect retries
// once without the session limits; queries still end at their context
// deadline and every probe query is a single-statement implicit
// transaction, so no lock or transaction outlives it.
func Connect(ctx context.Context, name string, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil && strings.Contains(err.Error(), "unsupported startup parameter") {
		bare := cfg.Copy()
		for _, k := range []string{"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"} {
			delete(bare.RuntimeParams, k)
		}
		conn, err = pgx.ConnectConfig(ctx, bare)
	}
	if err != nil {
		return nil, Explain(name, cfg, err)
	}
	return conn, nil
}

// Explain turns a connection or query error into one line that names the
// target and what to fix. It never includes the password.
func Explain(name string, cfg *pgx.ConnConfig, err error) error {
	if err == nil {
		return nil
	}
	where := name
	user := ""
	if cfg != nil {
		where = fmt.Sprintf("%s (%s)", name, Addr(cfg))
		user = cfg.User
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01":
			return &Error{Target: name, Msg: fmt.Sprintf("%s: password authentication failed for user %q: check the password in the DSN, PGPASSWORD or ~/.pgpass", where, user), Err: err}
		case "28000":
			if msg, ok := explainAuthTLS(where, user, pgErr); ok {
				return &Error{Target: name, Msg: msg, Err: err}
			}
			return &Error{Target: name, Msg: fmt.Sprintf("%s: server rejected the connection (%s): add a pg_hba.conf entry for user %q from this host", where, pgErr.Message, user), Err: err}
		case "3D000":
			return &Error{Target: name, Msg: fmt.Sprintf("%s: %s: fix dbname in the DSN", where, pgErr.Message), Err: err}
		case "42501":
			return &Error{Target: name, Msg: fmt.Sprintf("%s: permission denied (%s): run `walprobe setup --print-sql` for the grants", where, pgErr.Message), Err: err}
		case "53300":
			return &Error{Target: name, Msg: fmt.Sprintf("%s: too many connections: raise max_connections or free connections", where), Err: err}
		case "57P03":
			return &Error{Target: name, Msg: fmt.Sprintf("%s: server is starting up or shutting down", where), Err: err}
		}
		return &Error{Target: name, Msg: fmt.Sprintf("%s: %s (SQLSTATE %s)", where, pgErr.Message, pgErr.Code), Err: err}
	}
	if msg, ok := explainTLS(where, err); ok {
		if cfg != nil && cfg.Password != "" {
			msg = strings.ReplaceAll(msg, cfg.Password, "xxxxx")
		}
		return &Error{Target: name, Msg: msg, Err: err}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return &Error{Target: name, Msg: fmt.Sprintf("%s: cannot resolve host %q: fix host in the DSN", where, dnsErr.Name), Err: err}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return &Error{Target: name, Msg: fmt.Sprintf("%s: connection refused: is the server running and listening on that port?", where), Err: err}
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "timeout"):
		return &Error{Target: name, Msg: fmt.Sprintf("%s: timed out: check host, port and firewalls", where), Err: err}
	}
	if cfg != nil && cfg.Password != "" {
		msg = strings.ReplaceAll(msg, cfg.Password, "xxxxx")
	}
	return &Error{Target: name, Msg: fmt.Sprintf("%s: %s", where, msg), Err: err}
}

// Error is an actionable, password-free error about one target.
type Error struct {
	Target string
	Msg    string
	Err    error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap exposes the underlying error for errors.Is/As. Its text may carry
// details meant for debugging; print Error() to users.
func (e *Error) Unwrap() error { return e.Err }
