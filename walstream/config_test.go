package walstream

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestSlotName(t *testing.T) {
	tests := []struct {
		prefix, give string
		wantStart    string
	}{
		{"walprobe_", "probe-1", "walprobe_probe_1_"},
		{"walprobe_", "Host.Example:5432", "walprobe_host_example_5432_"},
		{"walprobe_", strings.Repeat("x", 100), "walprobe_" + strings.Repeat("x", 63-9-1-suffixLen) + "_"},
		{"w_", "ünï", "w__n__"},
	}
	for _, tt := range tests {
		got := slotName(tt.prefix, tt.give)
		if !strings.HasPrefix(got, tt.wantStart) || len(got) != len(tt.wantStart)+suffixLen || len(got) > 63 || sanitize(got) != got {
			t.Errorf("slotName(%q, %q) = %q, want %q + %d random", tt.prefix, tt.give, got, tt.wantStart, suffixLen)
		}
	}
	if a, b := slotName("p_", "x"), slotName("p_", "x"); a == b {
		t.Errorf("two slot names are both %q", a)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{StatusInterval: time.Millisecond, SlotPrefix: "Bad-"}
	err := c.Validate()
	for _, want := range []string{"DSN is required", "probe_id is required", "below 100ms", "slot prefix"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	c = Config{Conn: &pgx.ConnConfig{}, ProbeID: "p"}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if c.Publication != "walprobe_heartbeat" || c.StatusInterval != DefaultStatusInterval || c.SlotPrefix != DefaultSlotPrefix {
		t.Errorf("defaults not filled: %+v", c)
	}
}
