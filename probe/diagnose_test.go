package probe

import (
	"strings"
	"testing"
)

func TestDiagnose(t *testing.T) {
	ready, copying := "r", "d"
	n := func(v int64) *int64 { return &v }
	sub := func(state *string, enabled, worker bool, errors *int64) subFact {
		return subFact{Name: "app_sub", Enabled: enabled, Pubs: []string{"app_pub"}, State: state, Worker: worker, Errors: errors}
	}
	tests := []struct {
		name       string
		give       targetFacts
		prev       map[string]int64
		wantKind   verdictKind
		wantReason []string // substrings; none: no reason
	}{
		{
			name:     "standby shows the table",
			give:     targetFacts{Name: "replica1", Kind: KindStandby, Table: true, InRecovery: true},
			wantKind: measurable,
		},
		{
			name:       "standby has not replayed the table",
			give:       targetFacts{Name: "replica1", Kind: KindStandby, InRecovery: true},
			wantKind:   waiting,
			wantReason: []string{"standby replica1 has not replayed", "walprobe.heartbeat", "recovery_min_apply_delay"},
		},
		{
			name:       "endpoint on a primary without the table",
			give:       targetFacts{Name: "reader", Kind: KindEndpoint},
			wantKind:   unmeasurable,
			wantReason: []string{"endpoint reader has no walprobe.heartbeat", "walprobe setup"},
		},
		{
			name:       "subscriber without the table",
			give:       targetFacts{Name: "sub1", Kind: KindSubscriber, Subs: []subFact{sub(nil, true, true, nil)}},
			wantKind:   unmeasurable,
			wantReason: []string{"subscriber sub1 has no walprobe.heartbeat", "--subscriber sub1=ADMIN_DSN", `ALTER SUBSCRIPTION "app_sub" REFRESH PUBLICATION`},
		},
		{
			name:       "subscriber without a subscription",
			give:       targetFacts{Name: "sub1", Kind: KindSubscriber, Database: "app", Table: true},
			wantKind:   unmeasurable,
			wantReason: []string{`no subscription in database "app"`, "CREATE SUBSCRIPTION"},
		},
		{
			name:       "table in no subscription",
			give:       targetFacts{Name: "sub1", Kind: KindSubscriber, Table: true, Subs: []subFact{sub(nil, true, true, nil)}},
			wantKind:   unmeasurable,
			wantReason: []string{"walprobe.heartbeat is in no subscription on subscriber sub1", `ALTER PUBLICATION "app_pub" ADD TABLE walprobe.heartbeat`, `ALTER SUBSCRIPTION "app_sub" REFRESH PUBLICATION`},
		},
		{
			name:       "table not synchronised yet",
			give:       targetFacts{Name: "sub1", Kind: KindSubscriber, Table: true, Subs: []subFact{sub(&copying, true, true, nil)}},
			wantKind:   unmeasurable,
			wantReason: []string{`not synchronised yet in subscription "app_sub"`, `srsubstate "d": copying data`, "SELECT srsubstate FROM pg_subscription_rel"},
		},
		{
			name:       "table not synchronised in a disabled subscription",
			give:       targetFacts{Name: "sub1", Kind: KindSubscriber, Table: true, Subs: []subFact{sub(&copying, false, false, nil)}},
			wantKind:   unmeasurable,
			wantReason: []string{"not synchronised yet", `ALTER SUBSCRIPTION "app_sub" ENABLE`},
		},
		{
			name:     "subscribed and applying",
			give:     targetFacts{Name: "sub1", Kind: KindSubscriber, Table: true, Subs: []subFact{sub(&ready, true, true, n(0))}},
			prev:     map[string]int64{"app_sub": 0},
			wantKind: measurable,
		},
		{
			name:       "subscription disabled is real lag",
			give:       targetFacts{Name: "sub1", Kind: KindSubscriber, Table: true, Subs: []subFact{sub(&ready, false, false, n(0))}},
			wantKind:   measurable,
			wantReason: []string{`subscription "app_sub" is disabled`, `ALTER SUBSCRIPTION "app_sub" ENABLE`},
		},
		{
			name:       "no apply worker is real lag",
			give:       targetFacts{Name: "sub1", Kind: KindSubscriber, Table: true, Subs: []subFact{sub(&ready, true, false, nil)}},
			wantKind:   measurable,
			wantReason: []string{`no apply worker runs for subscription "app_sub"`},
		},
		{
			name:       "apply errors rising is real lag",
			give:       targetFacts{Name: "sub1", Kind: KindSubscriber, Table: true, Subs: []subFact{sub(&ready, true, false, n(3))}},
			prev:       map[string]int64{"app_sub": 2},
			wantKind:   measurable,
			wantReason: []string{`apply worker of subscription "app_sub" is failing`, "apply_error_count in pg_stat_subscription_stats rose to 3"},
		},
		{
			name:     "old apply errors that do not rise are history",
			give:     targetFacts{Name: "sub1", Kind: KindSubscriber, Table: true, Subs: []subFact{sub(&ready, true, true, n(3))}},
			prev:     map[string]int64{"app_sub": 3},
			wantKind: measurable,
		},
		{
			name: "a ready subscription wins over one still copying",
			give: targetFacts{Name: "sub1", Kind: KindSubscriber, Table: true, Subs: []subFact{
				{Name: "a_sub", Enabled: true, State: &copying, Worker: true},
				{Name: "b_sub", Enabled: true, State: &ready, Worker: true},
			}},
			wantKind: measurable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diagnose(tt.give, tt.prev)
			if got.kind != tt.wantKind {
				t.Errorf("kind %d, want %d (reason %q)", got.kind, tt.wantKind, got.reason)
			}
			if len(tt.wantReason) == 0 && got.reason != "" {
				t.Errorf("reason %q, want none", got.reason)
			}
			for _, w := range tt.wantReason {
				if !strings.Contains(got.reason, w) {
					t.Errorf("reason %q does not say %q", got.reason, w)
				}
			}
		})
	}
}

func TestWithCause(t *testing.T) {
	tests := []struct{ give, cause, want string }{
		{"lag 3s ≥ 1s", "subscription x is disabled", "lag 3s ≥ 1s; subscription x is disabled"},
		{"lag 3s ≥ 1s; old cause", "new cause", "lag 3s ≥ 1s; new cause"},
		{"lag 3s ≥ 1s; old cause", "", "lag 3s ≥ 1s"},
	}
	for _, tt := range tests {
		if got := withCause(tt.give, tt.cause); got != tt.want {
			t.Errorf("withCause(%q, %q) = %q, want %q", tt.give, tt.cause, got, tt.want)
		}
	}
}

func TestMajorVersion(t *testing.T) {
	for give, want := range map[string]int{"15.4 (Debian 15.4-1)": 15, "10.23": 10, "9.6.1": 9, "": 0} {
		if got := majorVersion(give); got != want {
			t.Errorf("majorVersion(%q) = %d, want %d", give, got, want)
		}
	}
}
