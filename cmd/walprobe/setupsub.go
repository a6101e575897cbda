package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

// subscription is one row of the subscriber's pg_subscription.
type subscription struct {
	name    string
	enabled bool
	slot    string
	pubs    []string
}

// setupSubscriber sets up one subscriber: the table and grants; then for
// each subscription of its database that streams from this primary (its
// slot is one of the primary's logical slots in this database), or that
// uses --user-publication: the table added to each publication it uses
// on the primary, the subscription refreshed, and a wait until the table
// is ready there. Every step is idempotent.
func (c *setupCmd) setupSubscriber(ctx context.Context, st *setupRun, pconn *pgx.Conn, pcfg *pgx.ConnConfig, sp setupSpec) {
	fmt.Fprintf(st.out, "setup: connecting to %s as %s\n", pgconf.Addr(sp.conn), sp.conn.User)
	conn, err := pgconf.Connect(ctx, sp.name, sp.conn)
	if err != nil {
		st.line(sp.name, "connect", err)
		return
	}
	defer conn.Close(context.Background())
	for _, sql := range heartbeat.SetupSQL(c.subscriberOptions()) {
		if !st.exec(ctx, sp.name, conn, sp.conn, stepName(sql), sql) {
			return
		}
	}
	subs, err := c.subscriptionsTo(ctx, conn, pconn)
	if err != nil {
		st.line(sp.name, "find the subscriptions to the primary", pgconf.Explain(sp.name, sp.conn, err))
		return
	}
	if len(subs) == 0 {
		st.line(sp.name, "find the subscriptions to the primary", fmt.Errorf("%s (%s): no subscription in this database streams from the primary's database: CREATE SUBSCRIPTION … PUBLICATION … first, or name its publication with --user-publication", sp.name, pgconf.Addr(sp.conn)))
		return
	}
	for _, sub := range subs {
		name := heartbeat.QuoteIdent(sub.name)
		for _, pub := range sub.pubs {
			if pub == heartbeat.Publication && !c.NoPublication {
				continue // created above, with the table in it
			}
			st.exec(ctx, "primary", pconn, pcfg, "add "+heartbeat.QualTable+" to publication "+heartbeat.QuoteIdent(pub), heartbeat.AddToPublicationSQL(pub))
		}
		if !sub.enabled {
			st.line(sp.name, "refresh subscription "+name, fmt.Errorf("subscription %s is disabled: ALTER SUBSCRIPTION %s ENABLE, then run setup again", name, name))
			continue
		}
		if !st.exec(ctx, sp.name, conn, sp.conn, "refresh subscription "+name, "ALTER SUBSCRIPTION "+name+" REFRESH PUBLICATION") {
			continue
		}
		st.line(sp.name, "wait until "+heartbeat.QualTable+" is synchronised in "+name, c.waitReady(ctx, conn, sub.name))
	}
}

// subscriptionsTo lists the subscriptions of conn's database that stream
// from the primary's database, or use --user-publication.
func (c *setupCmd) subscriptionsTo(ctx context.Context, conn, pconn *pgx.Conn) ([]subscription, error) {
	rows, err := conn.Query(ctx, `SELECT subname, subenabled, coalesce(subslotname::text, ''), subpublications FROM pg_subscription
		WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY subname`)
	if err != nil {
		return nil, err
	}
	var all []subscription
	for rows.Next() {
		var s subscription
		if err := rows.Scan(&s.name, &s.enabled, &s.slot, &s.pubs); err != nil {
			rows.Close()
			return nil, err
		}
		all = append(all, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var slots []string
	if err := pconn.QueryRow(ctx, `SELECT coalesce(array_agg(slot_name::text), '{}') FROM pg_replication_slots
		WHERE slot_type = 'logical' AND database = current_database()`).Scan(&slots); err != nil {
		return nil, err
	}
	var out []subscription
	for _, s := range all {
		if slices.Contains(slots, s.slot) || (c.UserPublication != "" && slices.Contains(s.pubs, c.UserPublication)) {
			out = append(out, s)
		}
	}
	return out, nil
}

// waitReady waits until the heartbeat table is ready ('r') in subscription
// sub, for at most --sync-timeout.
func (c *setupCmd) waitReady(ctx context.Context, conn *pgx.Conn, sub string) error {
	ctx, cancel := context.WithTimeout(ctx, c.SyncTimeout)
	defer cancel()
	var state string
	for {
		err := conn.QueryRow(ctx, `SELECT coalesce((SELECT r.srsubstate::text FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
			WHERE s.subname = $1 AND r.srrelid = to_regclass($2)), '')`, sub, heartbeat.QualTable).Scan(&state)
		switch {
		case err == nil && state == "r":
			return nil
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v (srsubstate %q): see the subscriber's log for the tablesync worker's error", c.SyncTimeout, state)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
