package probe

import (
	"fmt"
	"sort"
	"strings"

	"github.com/walprobe/walprobe/heartbeat"
)

// Why a target may answer and still show no beats, told apart so the
// operator hears what to run, not a lag that grows forever. The pure part
// (diagnose) is here; the reader gathers the facts (diagnose_query.go)
// only when a poll finds no heartbeat table or, on a subscriber, no row,
// and now and then while a subscriber lags.

// targetFacts is what one diagnostic query finds on a target.
type targetFacts struct {
	Name       string
	Kind       Kind
	Database   string
	Table      bool // walprobe.heartbeat exists
	InRecovery bool
	// Subs are the subscriptions of the target's database (subscriber
	// only), sorted by name.
	Subs []subFact
}

// subFact is one subscription on a subscriber.
type subFact struct {
	Name    string   `json:"name"`
	Enabled bool     `json:"enabled"`
	Pubs    []string `json:"pubs"`
	// State is the heartbeat table's srsubstate in this subscription's
	// pg_subscription_rel; nil when the table is not in it.
	State *string `json:"state"`
	// Worker says an apply worker runs (pg_stat_subscription.pid).
	Worker bool `json:"worker"`
	// Errors is pg_stat_subscription_stats.apply_error_count (PG 15+);
	// nil when the server does not keep it.
	Errors *int64 `json:"errors"`
}

// verdictKind says what a diagnosis means for the target.
type verdictKind int

const (
	// measurable: beats can show; the lag is real. reason, when set, is
	// why it grows (a disabled subscription, a failing apply worker).
	measurable verdictKind = iota
	// unmeasurable: the target cannot show beats until someone acts:
	// state down with reason, lag unknown.
	unmeasurable
	// waiting: the target will show the table by itself (a standby that
	// has not replayed its creation yet): state connecting with reason.
	waiting
)

// verdict is the outcome of diagnose.
type verdict struct {
	kind   verdictKind
	reason string
}

// syncStates names srsubstate values (pg_subscription_rel).
var syncStates = map[string]string{
	"i": "initializing", "d": "copying data", "f": "finished copying",
	"s": "synchronized, not yet ready", "r": "ready",
}

// diagnose decides what the facts mean. prevErrors holds each
// subscription's apply_error_count at the previous diagnosis; a count
// that rose since means the apply worker is failing. It is pure: the
// tests drive it without a server.
func diagnose(f targetFacts, prevErrors map[string]int64) verdict {
	where := fmt.Sprintf("%s %s", f.Kind, f.Name)
	if f.Kind != KindSubscriber {
		if f.Table {
			return verdict{kind: measurable}
		}
		if f.InRecovery {
			return verdict{kind: waiting, reason: fmt.Sprintf("%s has not replayed the creation of %s yet: it shows beats once it does (a delayed standby: after recovery_min_apply_delay); if it never does, run `walprobe setup` on the primary", where, heartbeat.QualTable)}
		}
		return verdict{kind: unmeasurable, reason: fmt.Sprintf("%s has no %s and is not in recovery: run `walprobe setup --primary ADMIN_DSN` against the primary it reads from", where, heartbeat.QualTable)}
	}
	subName := "<subscription>"
	if len(f.Subs) > 0 {
		subName = heartbeat.QuoteIdent(f.Subs[0].Name)
	}
	if !f.Table {
		return verdict{kind: unmeasurable, reason: fmt.Sprintf("%s has no %s: create it there (`walprobe setup --primary ADMIN_DSN --subscriber %s=ADMIN_DSN`, or the CREATE SCHEMA and CREATE TABLE of `walprobe setup --print-sql`), then ALTER SUBSCRIPTION %s REFRESH PUBLICATION",
			where, heartbeat.QualTable, f.Name, subName)}
	}
	if len(f.Subs) == 0 {
		return verdict{kind: unmeasurable, reason: fmt.Sprintf("%s has no subscription in database %q: subscribe to a publication holding %s (CREATE SUBSCRIPTION …; see `walprobe setup`)", where, f.Database, heartbeat.QualTable)}
	}
	var holding []subFact
	for _, s := range f.Subs {
		if s.State != nil {
			holding = append(holding, s)
		}
	}
	if len(holding) == 0 {
		s := f.Subs[0]
		pub := "<publication>"
		if len(s.Pubs) > 0 {
			pub = heartbeat.QuoteIdent(s.Pubs[0])
		}
		return verdict{kind: unmeasurable, reason: fmt.Sprintf("%s is in no subscription on %s (never subscribed, or the subscription not refreshed): on the primary ALTER PUBLICATION %s ADD TABLE %s (if it is not in it), then on %s ALTER SUBSCRIPTION %s REFRESH PUBLICATION",
			heartbeat.QualTable, where, pub, heartbeat.QualTable, f.Name, heartbeat.QuoteIdent(s.Name))}
	}
	// Prefer the subscription that can deliver: ready first, then enabled.
	sort.SliceStable(holding, func(i, j int) bool {
		ri, rj := *holding[i].State == "r", *holding[j].State == "r"
		if ri != rj {
			return ri
		}
		return holding[i].Enabled && !holding[j].Enabled
	})
	s := holding[0]
	name := heartbeat.QuoteIdent(s.Name)
	if *s.State != "r" {
		what := syncStates[*s.State]
		if what == "" {
			what = "unknown state"
		}
		fix := fmt.Sprintf("wait for the table sync; if it stays, see the subscriber's log for the tablesync worker's error (SELECT srsubstate FROM pg_subscription_rel WHERE srrelid = '%s'::regclass)", heartbeat.QualTable)
		if !s.Enabled {
			fix = fmt.Sprintf("the subscription is disabled: ALTER SUBSCRIPTION %s ENABLE", name)
		}
		return verdict{kind: unmeasurable, reason: fmt.Sprintf("%s is not synchronised yet in subscription %s on %s (srsubstate %q: %s): %s", heartbeat.QualTable, name, where, *s.State, what, fix)}
	}
	switch prev, seen := prevErrors[s.Name]; {
	case !s.Enabled:
		return verdict{kind: measurable, reason: fmt.Sprintf("subscription %s is disabled: ALTER SUBSCRIPTION %s ENABLE", name, name)}
	case s.Errors != nil && seen && *s.Errors > prev:
		return verdict{kind: measurable, reason: fmt.Sprintf("the apply worker of subscription %s is failing: apply_error_count in pg_stat_subscription_stats rose to %d; see the subscriber's log for the error", name, *s.Errors)}
	case !s.Worker:
		return verdict{kind: measurable, reason: fmt.Sprintf("no apply worker runs for subscription %s: see the subscriber's log (the connection to the publisher, max_logical_replication_workers)", name)}
	}
	return verdict{kind: measurable}
}

// errorCounts is each subscription's apply_error_count, for the next
// diagnosis.
func errorCounts(f targetFacts) map[string]int64 {
	m := map[string]int64{}
	for _, s := range f.Subs {
		if s.Errors != nil {
			m[s.Name] = *s.Errors
		}
	}
	return m
}

// causeSep joins a lag reason and its cause in a state reason.
const causeSep = "; "

// withCause returns reason with its cause replaced by cause.
func withCause(reason, cause string) string {
	reason, _, _ = strings.Cut(reason, causeSep)
	if cause == "" {
		return reason
	}
	return reason + causeSep + cause
}
