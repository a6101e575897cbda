package localcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
)

// Options says what to start besides the primary.
type Options struct {
	// Standbys is the number of physical streaming standbys, made with
	// pg_basebackup -R and named standby1, standby2, ….
	Standbys int
	// Subscriber starts a logical subscriber with the heartbeat table and
	// the subscription walprobe_sub to the primary's walprobe_heartbeat
	// publication.
	Subscriber bool
	// PgBouncer starts pgbouncer (pool_mode=transaction) in front of
	// Standbys[0]. It needs Standbys >= 1.
	PgBouncer bool
	// UnnamedStandbys leaves application_name out of the standbys'
	// primary_conninfo, as pg_basebackup -R does: every standby then shows
	// up in the primary's pg_stat_replication as `walreceiver`. By
	// default each is named after itself (standby1, …).
	UnnamedStandbys bool
	// ExtraConf lines are appended to postgresql.conf of every server.
	ExtraConf []string
	// TLS turns ssl on in every server with certificates from a CA
	// generated at start ([Cluster.TLS]) and creates [CertUser], who logs
	// in only with a client certificate. Password users may still connect
	// without TLS.
	TLS bool
	// TLSServerNames are the DNS names and IPs the server certificate is
	// valid for; default [DefaultTLSServerNames].
	TLSServerNames []string
	// BinDir holds initdb, postgres and pg_basebackup. Default:
	// $WALPROBE_PG_BINDIR, else /usr/lib/postgresql/15/bin.
	BinDir string
	// PgBouncerBin is the pgbouncer program. Default: $WALPROBE_PGBOUNCER,
	// else /usr/sbin/pgbouncer.
	PgBouncerBin string
	// Logf receives progress lines; nil is silent.
	Logf func(format string, args ...any)
}

// Cluster is a running set of servers. Close stops them all.
type Cluster struct {
	Dir        string // temporary directory holding every data dir and log
	Primary    *Server
	Standbys   []*Server
	Subscriber *Server    // nil unless Options.Subscriber
	PgBouncer  *PgBouncer // nil unless Options.PgBouncer
	TLS        *TLS       // nil unless Options.TLS
	// Password is the canary password of the postgres and walprobe roles;
	// tests search logs and outputs for it.
	Password string
	// StartupTime is how long Start took.
	StartupTime time.Duration

	env       *env
	closeOnce sync.Once
	closeErr  error
}

// SubscriptionName is the subscription Options.Subscriber creates.
const SubscriptionName = "walprobe_sub"

// Start brings up the cluster o describes and returns once every standby
// streams, the subscription has synced and pgbouncer answers. On error it
// tears down whatever it started.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	begin := time.Now()
	if o.Standbys < 0 {
		return nil, fmt.Errorf("start cluster: Standbys is %d, want >= 0", o.Standbys)
	}
	if o.PgBouncer && o.Standbys == 0 {
		return nil, errors.New("start cluster: PgBouncer sits in front of Standbys[0]: set Standbys >= 1")
	}
	b, err := resolveBins(o)
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	as, err := lookupRunAs()
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	dir, err := os.MkdirTemp("", "walprobe-cluster-")
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	c := &Cluster{Dir: dir, Password: "canary-" + randomHex(8)}
	c.env = &env{dir: dir, password: c.Password, bins: b, runAs: as, logf: logf}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("start cluster: %w", err), c.Close())
		}
	}()
	if err := as.chown(dir); err != nil {
		return nil, err
	}
	if err := c.writePgpass(); err != nil {
		return nil, err
	}

	if o.TLS {
		if c.TLS, err = newTLS(c.env, o.TLSServerNames); err != nil {
			return nil, err
		}
		conf, err := c.TLS.conf(c.env)
		if err != nil {
			return nil, err
		}
		o.ExtraConf = append(slices.Clip(o.ExtraConf), conf...)
	}

	n := 1 + o.Standbys
	if o.Subscriber {
		n++
	}
	if o.PgBouncer {
		n++
	}
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	c.Primary = newServer(c.env, "primary", ports[0])
	for i := range o.Standbys {
		s := newServer(c.env, fmt.Sprintf("standby%d", i+1), ports[1+i])
		s.unnamed = o.UnnamedStandbys
		c.Standbys = append(c.Standbys, s)
	}
	next := 1 + o.Standbys
	if o.Subscriber {
		c.Subscriber = newServer(c.env, "subscriber", ports[next])
		next++
	}
	if o.PgBouncer {
		c.PgBouncer = newPgBouncer(c.env, ports[next], c.Standbys[0])
	}

	// The subscriber is independent of the primary until CREATE
	// SUBSCRIPTION: its initdb runs alongside the primary's.
	steps := []func() error{func() error { return c.bootPrimary(ctx, o) }}
	if c.Subscriber != nil {
		steps = append(steps, func() error { return c.bootSubscriber(ctx, o) })
	}
	if err := parallel(steps...); err != nil {
		return nil, err
	}
	if o.TLS {
		// Before the base backups, so standbys have the role too.
		for _, s := range []*Server{c.Primary, c.Subscriber} {
			if s != nil {
				if err := createCertUser(ctx, s); err != nil {
					return nil, err
				}
			}
		}
	}
	steps = steps[:0]
	for _, s := range c.Standbys {
		steps = append(steps, func() error { return c.bootStandby(ctx, s) })
	}
	if c.Subscriber != nil {
		steps = append(steps, func() error { return c.subscribe(ctx) })
	}
	if err := parallel(steps...); err != nil {
		return nil, err
	}
	if c.PgBouncer != nil {
		if err := c.PgBouncer.write(); err != nil {
			return nil, fmt.Errorf("configure pgbouncer: %w", err)
		}
		if err := c.PgBouncer.Start(ctx); err != nil {
			return nil, err
		}
	}
	for _, s := range c.Standbys {
		if err := c.waitStreaming(ctx, s); err != nil {
			return nil, err
		}
	}
	c.StartupTime = time.Since(begin)
	logf("cluster up in %v: primary, %d standbys, subscriber %t, pgbouncer %t in %s",
		c.StartupTime.Round(time.Millisecond), len(c.Standbys), c.Subscriber != nil, c.PgBouncer != nil, dir)
	return c, nil
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}

// writePgpass writes the password file that keeps the password out of
// pg_basebackup's command line (ps shows it) and out of connection strings
// stored on the servers (their logs and catalogs can show them).
func (c *Cluster) writePgpass() error {
	return c.env.runAs.writeFile(c.env.passfile(), "127.0.0.1:*:*:postgres:"+c.Password+"\n")
}

// bootPrimary creates, starts and prepares the primary: the walprobe role
// and the heartbeat schema, grants and publication.
func (c *Cluster) bootPrimary(ctx context.Context, o Options) error {
	if err := c.Primary.initdb(ctx, o.ExtraConf); err != nil {
		return err
	}
	if err := c.Primary.Start(ctx); err != nil {
		return err
	}
	stmts := heartbeat.SetupSQL(heartbeat.SetupOptions{Role: "walprobe", Publication: true})
	return c.prepare(ctx, c.Primary, stmts)
}

// bootSubscriber creates and starts the subscriber with the heartbeat table
// and grants; subscribe connects it to the primary later.
func (c *Cluster) bootSubscriber(ctx context.Context, o Options) error {
	if err := c.Subscriber.initdb(ctx, o.ExtraConf); err != nil {
		return err
	}
	if err := c.Subscriber.Start(ctx); err != nil {
		return err
	}
	return c.prepare(ctx, c.Subscriber, heartbeat.SetupSQL(heartbeat.SetupOptions{Role: "walprobe"}))
}

// prepare creates the walprobe role on a server made by initdb and runs the
// setup statements.
func (c *Cluster) prepare(ctx context.Context, s *Server, setup []string) error {
	stmts := append([]string{
		"CREATE ROLE walprobe LOGIN REPLICATION PASSWORD " + quoteLiteral(c.Password),
		"GRANT pg_monitor TO walprobe",
	}, setup...)
	for i, sql := range stmts {
		if err := s.Exec(ctx, sql); err != nil {
			// Name the statement by position: the first holds the password.
			return fmt.Errorf("prepare %s, statement %d: %w", s.Name, i+1, err)
		}
	}
	return nil
}

func (c *Cluster) bootStandby(ctx context.Context, s *Server) error {
	if err := s.basebackup(ctx, c.Primary); err != nil {
		return err
	}
	return s.Start(ctx)
}

// subscribe creates walprobe_sub on the subscriber and waits until the
// initial copy of the heartbeat table is done.
func (c *Cluster) subscribe(ctx context.Context) error {
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres passfile=%s dbname=postgres",
		c.Primary.Port, c.env.passfile())
	sql := fmt.Sprintf("CREATE SUBSCRIPTION %s CONNECTION %s PUBLICATION %s",
		SubscriptionName, quoteLiteral(conninfo), heartbeat.Publication)
	c.env.logf("subscriber: create subscription %s", SubscriptionName)
	if err := c.Subscriber.Exec(ctx, sql); err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	// srsubstate: r = ready, s = synchronized; anything else is still copying.
	err := c.Subscriber.WaitScalar(ctx, "t",
		"SELECT count(*) > 0 AND bool_and(srsubstate IN ('r', 's')) FROM pg_subscription_rel")
	if err != nil {
		return err
	}
	c.env.logf("subscriber synced %s", SubscriptionName)
	return nil
}

// waitStreaming waits until the primary shows s streaming.
func (c *Cluster) waitStreaming(ctx context.Context, s *Server) error {
	if s.unnamed {
		// The primary cannot tell unnamed standbys apart: ask s itself.
		return s.WaitScalar(ctx, "streaming", "SELECT coalesce(max(status), 'absent') FROM pg_stat_wal_receiver")
	}
	return c.Primary.WaitScalar(ctx, "streaming",
		"SELECT coalesce(max(state), 'absent') FROM pg_stat_replication WHERE application_name = $1", s.Name)
}

// Servers returns every PostgreSQL server of the cluster: the primary, the
// standbys, then the subscriber.
func (c *Cluster) Servers() []*Server {
	var ss []*Server
	if c.Primary != nil {
		ss = append(ss, c.Primary)
	}
	ss = append(ss, c.Standbys...)
	if c.Subscriber != nil {
		ss = append(ss, c.Subscriber)
	}
	return ss
}

// LogTails returns the last n lines of every server's log and pgbouncer's,
// each under a header, for printing when a test fails.
func (c *Cluster) LogTails(n int) string {
	var out string
	for _, s := range c.Servers() {
		out += fmt.Sprintf("--- %s log (%s):\n%s\n", s.Name, s.LogPath, s.LogTail(n))
	}
	if c.PgBouncer != nil {
		out += fmt.Sprintf("--- pgbouncer log (%s):\n%s\n", c.PgBouncer.LogPath, c.PgBouncer.LogTail(n))
	}
	return out
}

// Close stops every process (fast shutdown, then SIGKILL of its process
// group) and removes Dir. It is safe to call more than once and from another
// goroutine than Start's (a signal handler); later calls return the first
// result.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Cluster) close() error {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Leaves first: a primary's fast shutdown waits for its walsenders to
	// hand the shutdown checkpoint to connected standbys and subscribers.
	var leaves []func() error
	if c.PgBouncer != nil {
		leaves = append(leaves, func() error { return c.PgBouncer.Stop(ctx) })
	}
	for _, s := range c.Standbys {
		leaves = append(leaves, func() error { return s.Stop(ctx) })
	}
	if c.Subscriber != nil {
		leaves = append(leaves, func() error { return c.Subscriber.Stop(ctx) })
	}
	errs := []error{parallel(leaves...)}
	if c.Primary != nil {
		errs = append(errs, c.Primary.Stop(ctx))
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, err)
	}
	c.env.logf("cluster stopped in %v", time.Since(begin).Round(time.Millisecond))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close cluster: %w", err)
	}
	return nil
}
