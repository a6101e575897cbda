package slo

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/probe"
)

func TestParseObjectives(t *testing.T) {
	targets := map[string]probe.Kind{
		"replica1": probe.KindStandby, "sub": probe.KindSubscriber, "stream": probe.KindStream,
		"standby": probe.KindEndpoint, // a target named like a kind
	}
	const day = 24 * time.Hour
	tests := []struct {
		name    string
		give    []string
		want    []Objective
		wantErr []string // substrings; none: valid
	}{
		{"target with threshold", []string{"replica1=0.999@250ms"},
			[]Objective{{Target: "replica1", Kind: probe.KindStandby, Objective: 0.999, Threshold: 250 * time.Millisecond}}, nil},
		{"kind, percent, window in days", []string{"subscriber=99.5%@2s/7d"},
			[]Objective{{Kind: probe.KindSubscriber, Objective: 0.995, Threshold: 2 * time.Second, Window: 7 * day}}, nil},
		{"default threshold", []string{"*=0.99"},
			[]Objective{{Objective: 0.99, Threshold: 500 * time.Millisecond}}, nil},
		{"go duration window", []string{"sub=0.9/36h"},
			[]Objective{{Target: "sub", Kind: probe.KindSubscriber, Objective: 0.9, Threshold: 500 * time.Millisecond, Window: 36 * time.Hour}}, nil},
		{"bare kind word wins over a target of that name", []string{"standby=0.99@1s"},
			[]Objective{{Kind: probe.KindStandby, Objective: 0.99, Threshold: time.Second}}, nil},
		{"explicit target form", []string{"target:standby=0.99@1s", "kind:stream=0.9@100ms"},
			[]Objective{
				{Target: "standby", Kind: probe.KindEndpoint, Objective: 0.99, Threshold: time.Second},
				{Kind: probe.KindStream, Objective: 0.9, Threshold: 100 * time.Millisecond},
			}, nil},
		{"several", []string{"*=0.99@1s", "standby=0.999@500ms", "replica1=0.95@3s/28d"},
			[]Objective{
				{Objective: 0.99, Threshold: time.Second},
				{Kind: probe.KindStandby, Objective: 0.999, Threshold: 500 * time.Millisecond},
				{Target: "replica1", Kind: probe.KindStandby, Objective: 0.95, Threshold: 3 * time.Second, Window: 28 * day},
			}, nil},
		{"unknown target names the known ones", []string{"replcia1=0.99@1s"}, nil,
			[]string{`--slo "replcia1=0.99@1s": no target named "replcia1"`, "replica1, standby, stream, sub"}},
		{"no equals", []string{"0.99@1s"}, nil, []string{"want SELECTOR=OBJECTIVE"}},
		{"objective 1", []string{"*=1@1s"}, nil, []string{`objective "1"`}},
		{"objective over 100%", []string{"*=100%"}, nil, []string{`objective "100%"`}},
		{"bad threshold and window at once", []string{"*=0.99@fast/forever"}, nil,
			[]string{`threshold "fast"`, `window "forever"`}},
		{"negative threshold", []string{"*=0.99@-1s"}, nil, []string{`threshold "-1s"`}},
		{"window too short", []string{"*=0.99@1s/5m"}, nil, []string{`window "5m"`, "1h to 90d"}},
		{"window too long", []string{"*=0.99@1s/91d"}, nil, []string{`window "91d"`}},
		{"unknown kind", []string{"kind:replica=0.99"}, nil, []string{`unknown kind "replica"`}},
		{"duplicate selector", []string{"replica1=0.99", "target:replica1=0.9"}, nil, []string{"selects the same targets"}},
		{"every bad entry reported", []string{"nope=0.99", "*=2"}, nil, []string{`"nope=0.99"`, `"*=2"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseObjectives("--slo", tt.give, 500*time.Millisecond, targets)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("ParseObjectives(%q) = %+v, want an error", tt.give, got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseObjectives(%q): %v", tt.give, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseObjectives(%q) =\n %+v\nwant\n %+v", tt.give, got, tt.want)
			}
		})
	}
}
