package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

type setupCmd struct {
	Primary         string `help:"Administrator DSN of the primary (or of a subscriber with --subscriber-only)." placeholder:"DSN"`
	Role            string `help:"Grant the probe's least privileges to this role." placeholder:"ROLE"`
	UserPublication string `help:"Also add the heartbeat table to your publication, so subscribers time the apply worker your data uses." placeholder:"NAME"`
	NoPublication   bool   `help:"Do not create the walprobe_heartbeat publication (the logical stream needs it)."`
	SubscriberOnly  bool   `help:"Only the table and grants (run this on a logical subscriber)."`
	PrintSQL        bool   `help:"Print the SQL instead of running it." name:"print-sql"`
}

func (c *setupCmd) options() heartbeat.SetupOptions {
	o := heartbeat.SetupOptions{Role: c.Role, Publication: !c.NoPublication, UserPublication: c.UserPublication}
	if c.SubscriberOnly {
		o.Publication, o.UserPublication = false, ""
	}
	return o
}

func (c *setupCmd) Run(ctx context.Context, s streams) error {
	stmts := heartbeat.SetupSQL(c.options())
	if c.PrintSQL {
		fmt.Fprintf(s.out, "-- walprobe setup: run as a role that may create schemas and publications.\n")
		if c.Role != "" {
			fmt.Fprintf(s.out, "-- The probe role needs LOGIN; REPLICATION for the logical stream:\n--   ALTER ROLE %s LOGIN REPLICATION;\n", heartbeat.QuoteIdent(c.Role))
			fmt.Fprintf(s.out, "-- Optional, for the classic numbers (pg_stat_replication details):\n--   GRANT pg_monitor TO %s;\n", heartbeat.QuoteIdent(c.Role))
		}
		fmt.Fprint(s.out, heartbeat.Script(stmts))
		return nil
	}
	if c.Primary == "" {
		return &configError{errors.New("--primary is required (or use --print-sql)")}
	}
	cfg, err := pgconf.Parse("--primary", c.Primary)
	if err != nil {
		return &configError{err}
	}
	begin := time.Now()
	fmt.Fprintf(s.err, "setup: connecting to %s as %s\n", pgconf.Addr(cfg), cfg.User)
	conn, err := pgconf.Connect(ctx, "primary", cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for i, st := range stmts {
		fmt.Fprintf(s.err, "setup [%d/%d] %s\n", i+1, len(stmts), firstLine(st))
		if _, err := conn.Exec(ctx, st); err != nil {
			return fmt.Errorf("setup step %d (%s): %w", i+1, firstLine(st), pgconf.Explain("primary", cfg, err))
		}
	}
	fmt.Fprintf(s.err, "setup done: %d statements in %v\n", len(stmts), time.Since(begin).Round(time.Millisecond))
	return nil
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i] + " …"
		}
	}
	return s
}
