package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// env is what every process of one cluster shares.
type env struct {
	dir      string
	password string
	bins     bins
	runAs    runAs
	logf     func(format string, args ...any)
}

// passfile is the libpq password file every server-side connection (base
// backup, WAL receiver, subscription) reads the canary password from.
func (e *env) passfile() string { return filepath.Join(e.dir, "pgpass") }

// Server is one PostgreSQL server of a cluster.
type Server struct {
	Name    string // "primary", "standby1", …, "subscriber"
	Port    int    // TCP port on 127.0.0.1
	DataDir string
	LogPath string // the server's stderr log

	env *env
	// primaryConninfo is what a standby streams from; RestoreReceiver puts
	// it back. Empty for servers made by initdb.
	primaryConninfo string
	// unnamed: primaryConninfo has no application_name (Options.UnnamedStandbys).
	unnamed bool

	mu sync.Mutex // guards p
	p  *proc      // nil while stopped
}

func newServer(e *env, name string, port int) *Server {
	return &Server{
		Name:    name,
		Port:    port,
		DataDir: filepath.Join(e.dir, name),
		LogPath: filepath.Join(e.dir, name+".log"),
		env:     e,
	}
}

// DSN returns a key=value libpq connection string for user on this server.
// It holds the canary password: do not log it.
func (s *Server) DSN(user string) string {
	return dsn(s.Port, user, s.env.password)
}

// SuperDSN is DSN("postgres").
func (s *Server) SuperDSN() string { return s.DSN("postgres") }

func dsn(port int, user, password string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=postgres sslmode=disable connect_timeout=5",
		port, user, password)
}

// Connect opens a pgx connection as user. The caller closes it.
func (s *Server) Connect(ctx context.Context, user string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, s.DSN(user))
	if err != nil {
		return nil, fmt.Errorf("connect to %s as %s: %w", s.Name, user, err)
	}
	return conn, nil
}

// Exec runs one statement as superuser on a fresh connection. The error
// names the server, not the statement, which may hold a password.
func (s *Server) Exec(ctx context.Context, sql string, args ...any) error {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("exec on %s: %w", s.Name, err)
	}
	return nil
}

// Scalar runs a query returning one value as superuser and returns the
// value in PostgreSQL's text form ("t", "42", "streaming"). It uses the
// simple protocol so any type reads as text; SQL NULL is [ErrNull].
func (s *Server) Scalar(ctx context.Context, sql string, args ...any) (string, error) {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v *string
	err = conn.QueryRow(ctx, sql, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...).Scan(&v)
	if err != nil {
		return "", fmt.Errorf("query on %s: %w", s.Name, err)
	}
	if v == nil {
		return "", fmt.Errorf("query on %s: %w", s.Name, ErrNull)
	}
	return *v, nil
}

// WaitScalar polls Scalar until it returns want. Connection and query errors
// count as "not yet" (the server may be restarting); ctx bounds the wait,
// 30 s when it has no deadline.
func (s *Server) WaitScalar(ctx context.Context, want, sql string, args ...any) error {
	return poll(ctx, fmt.Sprintf("%s to return %q on %s", firstLine(sql), want, s.Name), func() (bool, string, error) {
		got, err := s.Scalar(ctx, sql, args...)
		if err != nil {
			return false, err.Error(), nil
		}
		return got == want, strconv.Quote(got), nil
	})
}

func firstLine(sql string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(sql), "\n")
	return l
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p != nil && !s.p.exited()
}

// PID returns the postmaster's process id, 0 when stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil || s.p.exited() {
		return 0
	}
	return s.p.pid()
}

// Start starts the server with `postgres -D` and waits until it accepts
// connections (as a hot standby for standbys). Starting a running server is
// a no-op.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil && !s.p.exited() {
		return nil
	}
	begin := time.Now()
	log, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	defer log.Close() // the child has its own copy of the descriptor
	if err := s.env.runAs.chown(s.LogPath); err != nil {
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	// SIGQUIT on harness death is an immediate shutdown: the postmaster
	// takes its backends with it.
	cmd := s.env.runAs.command(nil, s.env.dir, s.env.bins.postgres, syscall.SIGQUIT, "-D", s.DataDir)
	cmd.Stdout, cmd.Stderr = log, log
	p, err := startProc(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	s.p = p
	if err := s.waitReadyLocked(ctx); err != nil {
		_, _ = p.stop(context.WithoutCancel(ctx), syscall.SIGQUIT)
		s.p = nil
		return fmt.Errorf("start %s: %w\n%s", s.Name, err, fileTail(s.LogPath, 20))
	}
	s.logf("%s up on 127.0.0.1:%d in %v", s.Name, s.Port, time.Since(begin).Round(time.Millisecond))
	return nil
}

// waitReadyLocked waits for the postmaster to report "ready" (primary) or
// "standby" (accepting read-only connections) in the status line of
// postmaster.pid. Reading the file, unlike probing with connections, does
// not fill the log with "the database system is starting up".
func (s *Server) waitReadyLocked(ctx context.Context) error {
	pidFile := filepath.Join(s.DataDir, "postmaster.pid")
	want := strconv.Itoa(s.p.pid())
	return poll(ctx, "postmaster ready", func() (bool, string, error) {
		if s.p.exited() {
			return false, "", fmt.Errorf("postgres exited: %v", s.p.err)
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false, err.Error(), nil
		}
		// Line 1 is the pid (a stale file from a killed run has another),
		// line 8 the postmaster status.
		lines := strings.Split(string(b), "\n")
		if len(lines) < 8 || strings.TrimSpace(lines[0]) != want {
			return false, "no status yet", nil
		}
		status := strings.TrimSpace(lines[7])
		return status == "ready" || status == "standby", status, nil
	})
}

// Stop shuts the server down with a fast shutdown (SIGINT: roll back open
// transactions, checkpoint, exit), SIGKILLing its process group if that
// takes longer than ctx allows (15 s without a deadline). Stopping a stopped
// server is a no-op.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return nil
	}
	p := s.p
	s.p = nil
	killed, err := p.stop(ctx, syscall.SIGINT)
	if err != nil {
		return fmt.Errorf("stop %s: %w", s.Name, err)
	}
	if killed {
		s.logf("%s did not shut down in time, killed", s.Name)
	}
	return nil
}

// Restart stops and starts the server.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(ctx); err != nil {
		return err
	}
	return s.Start(ctx)
}

// LogTail returns the last n lines of the server log.
func (s *Server) LogTail(n int) string { return fileTail(s.LogPath, n) }

func (s *Server) logf(format string, args ...any) { s.env.logf(format, args...) }

// initdb creates a data directory with the canary password for postgres and
// writes the cluster's configuration into it.
func (s *Server) initdb(ctx context.Context, extraConf []string) error {
	s.logf("%s: initdb", s.Name)
	pwfile := filepath.Join(s.env.dir, s.Name+".pw")
	if err := s.env.runAs.writeFile(pwfile, s.env.password+"\n"); err != nil {
		return fmt.Errorf("initdb %s: %w", s.Name, err)
	}
	defer os.Remove(pwfile)
	cmd := s.env.runAs.command(ctx, s.env.dir, s.env.bins.initdb, syscall.SIGKILL,
		"-D", s.DataDir, "-U", "postgres", "--pwfile="+pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C",
		// Throwaway data: skipping the fsync of every file saves seconds.
		"--no-sync", "--no-instructions")
	if err := run(cmd); err != nil {
		return fmt.Errorf("initdb %s: %w", s.Name, err)
	}
	hba := strings.Join([]string{
		"local all postgres trust",
		"host all all 127.0.0.1/32 scram-sha-256",
		"host replication all 127.0.0.1/32 scram-sha-256",
		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(s.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("initdb %s: %w", s.Name, err)
	}
	conf := append(baseConf(), extraConf...)
	return s.appendConf(conf)
}

// baseConf is the configuration every server starts from; standbys inherit
// it through pg_basebackup.
func baseConf() []string {
	return []string{
		"max_connections = 200",
		"wal_level = logical",
		"max_wal_senders = 20",
		"max_replication_slots = 20",
		// No slots for standbys: keep enough WAL that a standby cut off
		// by CutReceiver or stopped for a while can catch up.
		"wal_keep_size = '256MB'",
		// Test data is throwaway; flushing would dominate bring-up and
		// commit latency on CI disks and changes nothing about replication.
		"fsync = off",
		"shared_buffers = '32MB'",
		// Standbys report their positions every second (what walprobe's
		// classic numbers read from pg_stat_replication).
		"wal_receiver_status_interval = '1s'",
		// How soon a standby retries streaming after RestoreReceiver or a
		// primary restart, and an apply worker after a subscriber restart
		// (5 s by default).
		"wal_retrieve_retry_interval = '200ms'",
		"log_line_prefix = '%m [%p] %q%a '",
	}
}

// appendConf appends lines to postgresql.conf, this server's address last so
// it wins over whatever a base backup copied from the primary.
func (s *Server) appendConf(lines []string) error {
	f, err := os.OpenFile(filepath.Join(s.DataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("configure %s: %w", s.Name, err)
	}
	var b strings.Builder
	b.WriteString("\n# walprobe test cluster\n")
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, "listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n", s.Port, s.DataDir)
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("configure %s: %w", s.Name, err)
	}
	return f.Close()
}

// basebackup makes s a streaming standby of primary.
func (s *Server) basebackup(ctx context.Context, primary *Server) error {
	s.logf("%s: base backup from %s", s.Name, primary.Name)
	cmd := s.env.runAs.command(ctx, s.env.dir, s.env.bins.basebackup, syscall.SIGKILL,
		"-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", "postgres", "-w",
		"-D", s.DataDir, "-R", "-X", "stream",
		// A spread checkpoint would make each backup wait for it.
		"--checkpoint=fast", "--no-sync")
	cmd.Env = append(cmd.Env, "PGPASSFILE="+s.env.passfile())
	if err := run(cmd); err != nil {
		return fmt.Errorf("base backup for %s: %w", s.Name, err)
	}
	// -R wrote a primary_conninfo without application_name (it names the
	// standby in pg_stat_replication); replace it with ours, named unless
	// Options.UnnamedStandbys. The password
	// comes from the passfile, never the conninfo: on every reload that
	// changes it, PostgreSQL logs `parameter "primary_conninfo" changed to
	// "…"` with the value in full.
	s.primaryConninfo = fmt.Sprintf("host=127.0.0.1 port=%d user=postgres passfile=%s",
		primary.Port, s.env.passfile())
	if !s.unnamed {
		s.primaryConninfo += " application_name=" + s.Name
	}
	auto := filepath.Join(s.DataDir, "postgresql.auto.conf")
	b, err := os.ReadFile(auto)
	if err != nil {
		return fmt.Errorf("configure %s: %w", s.Name, err)
	}
	var kept []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "primary_conninfo") {
			kept = append(kept, l)
		}
	}
	kept = append(kept, "primary_conninfo = "+quoteLiteral(s.primaryConninfo), "")
	if err := os.WriteFile(auto, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		return fmt.Errorf("configure %s: %w", s.Name, err)
	}
	return s.appendConf(nil)
}

// quoteLiteral quotes s as an SQL (and postgresql.conf) string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// requireStandby is a guard for helpers that only make sense on a standby.
func (s *Server) requireStandby() error {
	if s == nil {
		return errors.New("nil server")
	}
	if s.primaryConninfo == "" {
		return fmt.Errorf("%s: %w", s.Name, ErrNotStandby)
	}
	return nil
}
