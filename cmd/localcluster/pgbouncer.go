package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgBouncer is a pgbouncer in transaction pooling mode in front of a server.
type PgBouncer struct {
	Port    int    // TCP port on 127.0.0.1
	Dir     string // holds pgbouncer.ini, userlist.txt and the unix socket
	LogPath string // pgbouncer's logfile

	env     *env
	backend *Server
	ini     string
	stderr  string // pgbouncer's own stderr: config errors before the logfile opens

	mu sync.Mutex // guards p
	p  *proc      // nil while stopped
}

func newPgBouncer(e *env, port int, backend *Server) *PgBouncer {
	dir := filepath.Join(e.dir, "pgbouncer")
	return &PgBouncer{
		Port:    port,
		Dir:     dir,
		LogPath: filepath.Join(dir, "pgbouncer.log"),
		env:     e,
		backend: backend,
		ini:     filepath.Join(dir, "pgbouncer.ini"),
		stderr:  filepath.Join(dir, "stderr.log"),
	}
}

// DSN returns a key=value libpq connection string for user through
// pgbouncer. It holds the canary password: do not log it.
//
// pgbouncer 1.18 does not track protocol-level prepared statements in
// transaction mode, so pgx's default QueryExecModeCacheStatement fails
// with SQLSTATE 26000 once a client lands on another server connection
// than the one it prepared on. Use QueryExecModeExec, CacheDescribe or
// SimpleProtocol (in a DSN: default_query_exec_mode=exec).
func (p *PgBouncer) DSN(user string) string {
	return dsn(p.Port, user, p.env.password)
}

// write creates the directory, ini and auth file.
func (p *PgBouncer) write() error {
	if err := os.Mkdir(p.Dir, 0o700); err != nil {
		return err
	}
	if err := p.env.runAs.chown(p.Dir); err != nil {
		return err
	}
	// Plaintext passwords in the auth file let pgbouncer both check the
	// client's SCRAM exchange and log in to the server with SCRAM.
	users := fmt.Sprintf("\"postgres\" \"%s\"\n\"walprobe\" \"%s\"\n", p.env.password, p.env.password)
	if err := p.env.runAs.writeFile(filepath.Join(p.Dir, "userlist.txt"), users); err != nil {
		return err
	}
	ini := fmt.Sprintf(`[databases]
postgres = host=127.0.0.1 port=%d dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir = %s
pool_mode = transaction
auth_type = scram-sha-256
auth_file = %s
admin_users = postgres
stats_users = walprobe
logfile = %s
max_client_conn = 200
default_pool_size = 20
; JDBC and some drivers send it; pgbouncer refuses unknown parameters.
ignore_startup_parameters = extra_float_digits
; Retry a server that was down after 1 s, not 15: tests restart the standby.
server_login_retry = 1
server_connect_timeout = 5
`, p.backend.Port, p.Port, p.Dir, filepath.Join(p.Dir, "userlist.txt"), p.LogPath)
	return p.env.runAs.writeFile(p.ini, ini)
}

// Start runs pgbouncer in the foreground (not -d, so the harness keeps the
// process) and waits until a query passes through it to the backend.
func (p *PgBouncer) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p != nil && !p.p.exited() {
		return nil
	}
	begin := time.Now()
	errLog, err := os.OpenFile(p.stderr, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start pgbouncer: %w", err)
	}
	defer errLog.Close()
	// -q: the logfile has the same lines; stderr keeps only what comes
	// before it is open.
	cmd := p.env.runAs.command(nil, p.env.dir, p.env.bins.pgbouncer, syscall.SIGKILL, "-q", p.ini)
	cmd.Stdout, cmd.Stderr = errLog, errLog
	proc, err := startProc(cmd)
	if err != nil {
		return fmt.Errorf("start pgbouncer: %w", err)
	}
	p.p = proc
	err = poll(ctx, "pgbouncer to answer", func() (bool, string, error) {
		if proc.exited() {
			return false, "", fmt.Errorf("pgbouncer exited: %v", proc.err)
		}
		err := p.ping(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	if err != nil {
		_, _ = proc.stop(context.WithoutCancel(ctx), syscall.SIGTERM)
		p.p = nil
		return fmt.Errorf("start pgbouncer: %w\n%s\n%s", err, fileTail(p.stderr, 10), fileTail(p.LogPath, 10))
	}
	p.env.logf("pgbouncer up on 127.0.0.1:%d in front of %s in %v", p.Port, p.backend.Name, time.Since(begin).Round(time.Millisecond))
	return nil
}

// ping runs SELECT 1 through pgbouncer to the backend.
func (p *PgBouncer) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "SELECT 1")
	return err
}

// Stop shuts pgbouncer down immediately (SIGTERM), SIGKILLing it if it does
// not exit in time.
func (p *PgBouncer) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p == nil {
		return nil
	}
	proc := p.p
	p.p = nil
	if _, err := proc.stop(ctx, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop pgbouncer: %w", err)
	}
	return nil
}

// Restart stops and starts pgbouncer.
func (p *PgBouncer) Restart(ctx context.Context) error {
	if err := p.Stop(ctx); err != nil {
		return err
	}
	return p.Start(ctx)
}

// PID returns pgbouncer's process id, 0 when stopped.
func (p *PgBouncer) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p == nil || p.p.exited() {
		return 0
	}
	return p.p.pid()
}

// LogTail returns the last n lines of pgbouncer's log.
func (p *PgBouncer) LogTail(n int) string { return fileTail(p.LogPath, n) }
