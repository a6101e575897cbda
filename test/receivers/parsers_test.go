package receivers

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestParseDump reads testdata/debug-detailed.txt, an excerpt of what the
// collector's debugexporter printed in TestCollector (one metrics batch cut
// to three metrics, and one beat's trace), and checks every field the
// end-to-end assertions rely on, so a change in the exporter's format
// fails here rather than as a missing span there.
func TestParseDump(t *testing.T) {
	b, err := os.ReadFile("testdata/debug-detailed.txt")
	if err != nil {
		t.Fatal(err)
	}
	d := parseDump(string(b))
	if got := len(d.resources); got != 2 {
		t.Fatalf("%d resources, want 2", got)
	}
	if got := len(d.byInstance("otelcol-grpc")); got != 2 {
		t.Errorf("byInstance(otelcol-grpc): %d resources, want 2", got)
	}
	if got := len(d.byInstance("other")); got != 0 {
		t.Errorf("byInstance(other): %d resources, want 0", got)
	}
	met, spans := d.resources[0], d.resources[1]
	if met.signal != "metrics" || spans.signal != "spans" {
		t.Fatalf("signals %q, %q, want metrics, spans", met.signal, spans.signal)
	}
	for k, want := range map[string]string{"service.name": "Str(walprobe)", "service.version": "Str(dev)", "telemetry.sdk.version": "Str(1.47.0)"} {
		if got := spans.attrs[k]; got != want {
			t.Errorf("resource %s = %q, want %q", k, got, want)
		}
	}

	t.Run("metrics", func(t *testing.T) {
		tests := []struct {
			give                  int
			name, unit, dataType  string
			points                int
			wantTarget, wantValue string // first point
		}{
			{0, "walprobe.visibility.delay", "s", "Histogram", 2, "Str(standby1)", ""},
			{1, "walprobe.beats", "", "Sum", 1, "", "8"},
			{2, "walprobe.lag", "s", "Gauge", 2, "Str(standby1)", "0.899356"},
		}
		if got := len(met.metrics); got != len(tests) {
			t.Fatalf("%d metrics, want %d", got, len(tests))
		}
		for _, tt := range tests {
			m := met.metrics[tt.give]
			if m.name != tt.name || m.unit != tt.unit || m.dataType != tt.dataType || len(m.points) != tt.points {
				t.Errorf("metric %d = %s %q %s with %d points, want %s %q %s with %d", tt.give,
					m.name, m.unit, m.dataType, len(m.points), tt.name, tt.unit, tt.dataType, tt.points)
				continue
			}
			if p := m.points[0]; p.attrs["target"] != tt.wantTarget || p.value != tt.wantValue {
				t.Errorf("%s first point target %q value %q, want %q %q", m.name, p.attrs["target"], p.value, tt.wantTarget, tt.wantValue)
			}
		}
		if got := met.metrics[0].points[1].count; got != "6" {
			t.Errorf("histogram second point count %q, want 6", got)
		}
		if got := lagPoints(d.resources, "standby1"); !slices.Equal(got, []float64{0.899356}) {
			t.Errorf("lagPoints(standby1) = %v, want [0.899356]", got)
		}
	})

	t.Run("spans", func(t *testing.T) {
		if got := len(spans.spans); got != 3 {
			t.Fatalf("%d spans, want 3", got)
		}
		trees := beatTrees(spans.spans)
		if len(trees) != 1 {
			t.Fatalf("%d beat trees, want 1", len(trees))
		}
		bt := trees[0]
		if bt.root.id != "81da0740934ebf6d" || bt.root.traceID != "76b24ea9c6cec647c790e9b1ea911dd0" || bt.root.status != "Unset" {
			t.Errorf("root %+v", bt.root)
		}
		if got := bt.root.attrs["walprobe.beat.seq"]; got != "Int(3)" {
			t.Errorf("root walprobe.beat.seq = %q, want Int(3)", got)
		}
		sb, st := bt.children["standby1"], bt.children["stream"]
		if len(sb) != 1 || len(st) != 1 || len(bt.children) != 2 {
			t.Fatalf("children %v, want one standby1 and one stream", bt.children)
		}
		if got := sb[0].attrs["server.port"]; got != "Int(41671)" {
			t.Errorf("standby1 server.port = %q, want Int(41671)", got)
		}
		if got, ok := attrFloat(sb[0].attrs["walprobe.visibility.delay"]); !ok || got != 1.001007281 {
			t.Errorf("standby1 delay = %v %v, want 1.001007281", got, ok)
		}
		if got, want := sb[0].end.Sub(sb[0].start), 1002053802*time.Nanosecond; got != want {
			t.Errorf("standby1 span lasts %v, want %v", got, want)
		}
		if !slices.Equal(st[0].events, []string{"commit", "server_sent", "received"}) {
			t.Errorf("stream events %v", st[0].events)
		}
		if len(sb[0].events) != 0 {
			t.Errorf("standby1 events %v, want none", sb[0].events)
		}
		if got := len(completeTrees(d.resources)); got != 1 {
			t.Errorf("completeTrees: %d, want 1", got)
		}
	})
}

func TestAttrValue(t *testing.T) {
	tests := []struct {
		give              string
		wantType, wantVal string
	}{
		{"Str(walprobe)", "Str", "walprobe"},
		{"Int(5432)", "Int", "5432"},
		{"Str(a(b))", "Str", "a(b)"},
		{"Str()", "Str", ""},
		{"plain", "", "plain"},
	}
	for _, tt := range tests {
		typ, v := attrValue(tt.give)
		if typ != tt.wantType || v != tt.wantVal {
			t.Errorf("attrValue(%q) = %q, %q, want %q, %q", tt.give, typ, v, tt.wantType, tt.wantVal)
		}
	}
	if _, ok := attrFloat("Str(1.5)"); ok {
		t.Errorf("attrFloat(Str(1.5)) ok, want a number type only")
	}
}

func TestFailedExports(t *testing.T) {
	log := `time=1 level=INFO msg="exporting metrics over otlp"
time=2 level=WARN msg="otlp export failed; check the collector" error="failed to upload metrics: Post \"http://127.0.0.1:1/v1/metrics\": context canceled"
time=3 level=WARN msg="otlp export failed; check the collector" error="traces export: connection refused"
time=4 level=WARN msg="otlp trace flush" error="context deadline exceeded"`
	got := failedExports(log)
	if len(got) != 2 || !strings.HasPrefix(got[0], "time=3") || !strings.HasPrefix(got[1], "time=4") {
		t.Errorf("failedExports = %q, want the time=3 and time=4 lines", got)
	}
}
