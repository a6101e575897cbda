package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Default locations, overridable by Options and the environment.
const (
	defaultBinDir    = "/usr/lib/postgresql/15/bin"
	defaultPgBouncer = "/usr/sbin/pgbouncer"
	envBinDir        = "WALPROBE_PG_BINDIR"
	envPgBouncer     = "WALPROBE_PGBOUNCER"
)

// bins holds the absolute paths of the programs a cluster runs.
type bins struct {
	initdb, postgres, basebackup, pgbouncer string
}

// resolveBins finds the programs o needs, reporting every missing one.
func resolveBins(o Options) (bins, error) {
	dir := o.BinDir
	if dir == "" {
		dir = os.Getenv(envBinDir)
	}
	if dir == "" {
		dir = defaultBinDir
	}
	bouncer := o.PgBouncerBin
	if bouncer == "" {
		bouncer = os.Getenv(envPgBouncer)
	}
	if bouncer == "" {
		bouncer = defaultPgBouncer
	}
	b := bins{
		initdb:     filepath.Join(dir, "initdb"),
		postgres:   filepath.Join(dir, "postgres"),
		basebackup: filepath.Join(dir, "pg_basebackup"),
		pgbouncer:  bouncer,
	}
	const pgFix = `install the server with "apt-get install -y postgresql-15" (or set ` + envBinDir + `)`
	var errs []error
	check := func(name, path, fix string) {
		if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			errs = append(errs, &MissingBinaryError{Name: name, Path: path, Fix: fix})
		}
	}
	check("initdb", b.initdb, pgFix)
	check("postgres", b.postgres, pgFix)
	if o.Standbys > 0 {
		check("pg_basebackup", b.basebackup, pgFix)
	}
	if o.PgBouncer {
		check("pgbouncer", b.pgbouncer, `install it with "apt-get install -y pgbouncer" (or set `+envPgBouncer+`)`)
	}
	return b, errors.Join(errs...)
}

// runAs is the OS user server processes run as. PostgreSQL and pgbouncer
// refuse to run as root, so a root harness (CI containers) starts them as the
// postgres user and chowns every file they touch to it.
type runAs struct {
	cred *syscall.Credential // nil: run as ourselves
}

func lookupRunAs() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf(`running as root, servers must run as the postgres OS user (created by "apt-get install -y postgresql-15"): %w`, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return runAs{}, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return runAs{}, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return runAs{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, nil
}

// chown hands path to the server user; a no-op when not running as root.
func (r runAs) chown(path string) error {
	if r.cred == nil {
		return nil
	}
	return os.Chown(path, int(r.cred.Uid), int(r.cred.Gid))
}

// writeFile writes a file the server user owns and only it can read.
func (r runAs) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return r.chown(path)
}

// command builds a command run as the server user in its own process group,
// so a Ctrl-C on the terminal reaches only us, and Close decides how the
// servers stop.
//
// deathSig is sent by the kernel if the harness dies without calling Close
// (go test -timeout panics skip t.Cleanup): it keeps a crashed test from
// leaving servers behind. The kernel ties it to the OS thread that forked,
// which in Go only exits for a goroutine that locked it and returned; the
// harness never locks threads.
func (r runAs) command(ctx context.Context, home, path string, deathSig syscall.Signal, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ctx != nil {
		cmd = exec.CommandContext(ctx, path, args...)
		// Kill the whole group: pg_basebackup forks a WAL streaming child.
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig, Credential: r.cred}
	cmd.Env = childEnv(home)
	cmd.Dir = home
	return cmd
}

// childEnv is our environment without libpq's PG* variables (a PGHOST or
// PGPASSWORD of the developer must not leak into the cluster) and with HOME
// in the cluster directory, where the server user can read it.
func childEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home)
}

// run runs a short-lived command (initdb, pg_basebackup) to completion. Its
// output goes into the error only, trimmed to the last lines.
func run(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", filepath.Base(cmd.Path), err, tail(out.String(), 20))
	}
	return nil
}

// proc is a long-running child (postgres, pgbouncer) that leads its own
// process group.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returned
	err  error         // cmd.Wait's result; read only after done is closed
}

func startProc(cmd *exec.Cmd) (*proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stopGrace bounds a polite shutdown when the caller's ctx has no deadline.
const stopGrace = 15 * time.Second

// stop sends sig and waits for the process to exit. When ctx ends or
// stopGrace passes first, it SIGKILLs the whole process group (the postmaster
// and every backend). It returns once the process is reaped; killed reports
// whether force was needed.
func (p *proc) stop(ctx context.Context, sig syscall.Signal) (killed bool, err error) {
	_ = syscall.Kill(p.pid(), sig) // ESRCH: it already exited, and done says so
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-p.done:
		return false, nil
	case <-ctx.Done():
	case <-grace.C:
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
		return true, nil
	case <-time.After(10 * time.Second):
		return true, fmt.Errorf("pid %d survived SIGKILL for 10s", p.pid())
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. The listeners
// are held until all are chosen so the kernel cannot hand out one twice; a
// port can still be taken by someone else before the server binds it, which
// the server's start error then reports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// parallel runs fns concurrently and joins their errors.
func parallel(fns ...func() error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Go(func() { errs[i] = fn() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// poll calls f every interval until it reports done, ctx ends, or f returns
// a permanent error. last describes the most recent observation for the
// timeout error.
func poll(ctx context.Context, what string, f func() (done bool, last string, err error)) error {
	const interval = 20 * time.Millisecond
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last string
	for {
		done, l, err := f()
		if err != nil {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		if done {
			return nil
		}
		last = l
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s (last: %s): %w", what, last, ctx.Err())
		case <-t.C:
		}
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fileTail returns the last n lines of the file at path, or why it cannot.
func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return tail(string(b), n)
}
