package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

type setupCmd struct {
	Primary         string        `help:"Administrator DSN of the primary (or of a subscriber with --subscriber-only)." placeholder:"DSN"`
	Subscriber      []string      `help:"Logical subscriber to set up too (repeatable): the table and grants there; the table added to the publication(s) its subscription(s) to this primary use; the subscription refreshed; waits until the table is synchronised." placeholder:"NAME=ADMIN_DSN" sep:"none"`
	Role            string        `help:"Grant the probe's least privileges to this role." placeholder:"ROLE"`
	UserPublication string        `help:"Also add the heartbeat table to your publication, so subscribers time the apply worker your data uses (default with --subscriber: the publications their subscriptions use)." placeholder:"NAME"`
	NoPublication   bool          `help:"Do not create the walprobe_heartbeat publication (the logical stream needs it)."`
	SubscriberOnly  bool          `help:"Only the table and grants (run this on a logical subscriber)."`
	PrintSQL        bool          `help:"Print the SQL instead of running it, per server." name:"print-sql"`
	SyncTimeout     time.Duration `help:"How long to wait for each subscriber to synchronise the table." default:"2m" name:"sync-timeout"`
}

func (c *setupCmd) options() heartbeat.SetupOptions {
	o := heartbeat.SetupOptions{Role: c.Role, Publication: !c.NoPublication, UserPublication: c.UserPublication}
	if c.SubscriberOnly {
		o.Publication, o.UserPublication = false, ""
	}
	return o
}

// subscriberOptions is what a subscriber gets: the table and grants.
func (c *setupCmd) subscriberOptions() heartbeat.SetupOptions {
	return heartbeat.SetupOptions{Role: c.Role}
}

// setupSpec is one parsed --subscriber NAME=ADMIN_DSN.
type setupSpec struct {
	name string
	conn *pgx.ConnConfig
}

func (c *setupCmd) Run(ctx context.Context, s streams) error {
	specs, err := c.validate()
	if err != nil {
		return err
	}
	if c.PrintSQL {
		c.printSQL(s, specs)
		return nil
	}
	cfg, err := pgconf.Parse("--primary", c.Primary)
	if err != nil {
		return &configError{err}
	}
	begin := time.Now()
	// Progress goes to stderr: stdout is for --print-sql's script.
	st := &setupRun{out: s.err}
	primary := "primary"
	if c.SubscriberOnly {
		primary = "subscriber"
	}
	fmt.Fprintf(s.err, "setup: connecting to %s as %s\n", pgconf.Addr(cfg), cfg.User)
	pconn, err := pgconf.Connect(ctx, primary, cfg)
	if err != nil {
		return err
	}
	defer pconn.Close(context.Background())
	for _, sql := range heartbeat.SetupSQL(c.options()) {
		st.exec(ctx, primary, pconn, cfg, stepName(sql), sql)
	}
	for _, sp := range specs {
		c.setupSubscriber(ctx, st, pconn, cfg, sp)
	}
	if st.failed > 0 {
		return fmt.Errorf("setup: %d of %d steps failed (see above); fix them and run setup again: it is idempotent", st.failed, st.steps)
	}
	fmt.Fprintf(s.err, "setup done: %d steps in %v\n", st.steps, time.Since(begin).Round(time.Millisecond))
	return nil
}

// validate checks the flags, reporting all problems at once.
func (c *setupCmd) validate() ([]setupSpec, error) {
	var errs []error
	if c.Primary == "" && !c.PrintSQL {
		errs = append(errs, errors.New("--primary is required (or use --print-sql)"))
	}
	if c.SubscriberOnly && len(c.Subscriber) > 0 {
		errs = append(errs, errors.New("--subscriber-only sets up the one server given as --primary: drop --subscriber, or drop --subscriber-only and give the primary"))
	}
	var specs []setupSpec
	seen := map[string]bool{}
	for _, v := range c.Subscriber {
		name, dsn, ok := strings.Cut(v, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " '\"/:@") {
			errs = append(errs, errors.New("--subscriber: want NAME=ADMIN_DSN, e.g. --subscriber sub1=postgres://postgres@10.0.0.3/app"))
			continue
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("--subscriber %s: duplicate name %q", name, name))
			continue
		}
		seen[name] = true
		if c.PrintSQL {
			specs = append(specs, setupSpec{name: name})
			continue
		}
		cfg, err := pgconf.Parse("--subscriber "+name, dsn)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		specs = append(specs, setupSpec{name: name, conn: cfg})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, &configError{err}
	}
	return specs, nil
}

// printSQL prints the SQL per server. Which subscriptions and
// publications a subscriber uses is only known on the servers: those
// statements are comments with placeholders.
func (c *setupCmd) printSQL(s streams, specs []setupSpec) {
	fmt.Fprintf(s.out, "-- walprobe setup: run as a role that may create schemas and publications.\n")
	if c.Role != "" {
		fmt.Fprintf(s.out, "-- The probe role needs LOGIN; REPLICATION for the logical stream:\n--   ALTER ROLE %s LOGIN REPLICATION;\n", heartbeat.QuoteIdent(c.Role))
		fmt.Fprintf(s.out, "-- Optional, for the classic numbers (pg_stat_replication details):\n--   GRANT pg_monitor TO %s;\n", heartbeat.QuoteIdent(c.Role))
	}
	fmt.Fprint(s.out, heartbeat.Script(heartbeat.SetupSQL(c.options())))
	for _, sp := range specs {
		fmt.Fprintf(s.out, "\n-- On the primary, for subscriber %s: add the table to each publication its subscription uses\n-- (SELECT subpublications FROM pg_subscription on %s), unless it is %s:\n",
			sp.name, sp.name, heartbeat.Publication)
		if c.UserPublication != "" {
			fmt.Fprintf(s.out, "%s;\n", heartbeat.AddToPublicationSQL(c.UserPublication))
		} else {
			fmt.Fprintf(s.out, "--   ALTER PUBLICATION <publication> ADD TABLE %s;\n", heartbeat.QualTable)
		}
		fmt.Fprintf(s.out, "-- On subscriber %s:\n", sp.name)
		fmt.Fprint(s.out, heartbeat.Script(heartbeat.SetupSQL(c.subscriberOptions())))
		fmt.Fprintf(s.out, "-- then for each subscription to the primary (SELECT subname FROM pg_subscription):\n--   ALTER SUBSCRIPTION <subscription> REFRESH PUBLICATION;\n-- and wait until the table is ready ('r'):\n--   SELECT srsubstate FROM pg_subscription_rel WHERE srrelid = '%s'::regclass;\n", heartbeat.QualTable)
	}
}

// setupRun prints one line per server and step and counts failures.
type setupRun struct {
	out           interface{ Write([]byte) (int, error) }
	steps, failed int
}

func (r *setupRun) line(server, step string, err error) {
	r.steps++
	if err != nil {
		r.failed++
		fmt.Fprintf(r.out, "%-12s %-58s FAILED: %s\n", server, step, oneLine(err.Error()))
		return
	}
	fmt.Fprintf(r.out, "%-12s %-58s ok\n", server, step)
}

func (r *setupRun) exec(ctx context.Context, server string, conn *pgx.Conn, cfg *pgx.ConnConfig, step, sql string) bool {
	_, err := conn.Exec(ctx, sql)
	if err != nil {
		err = pgconf.Explain(server, cfg, err)
	}
	r.line(server, step, err)
	return err == nil
}

// stepName says what a setup statement does, in a few words.
func stepName(sql string) string {
	switch {
	case strings.HasPrefix(sql, "CREATE SCHEMA"):
		return "create schema " + heartbeat.Schema
	case strings.HasPrefix(sql, "CREATE TABLE"):
		return "create table " + heartbeat.QualTable
	case strings.Contains(sql, "CREATE PUBLICATION"):
		return "create publication " + heartbeat.Publication
	case strings.Contains(sql, "ALTER PUBLICATION"):
		_, rest, _ := strings.Cut(sql, "ALTER PUBLICATION ")
		pub, _, _ := strings.Cut(rest, " ADD TABLE")
		return "add " + heartbeat.QualTable + " to publication " + pub
	}
	return firstLine(sql)
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i] + " …"
		}
	}
	return s
}
