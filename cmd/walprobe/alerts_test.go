package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/walprobe/walprobe/probe"
	"github.com/walprobe/walprobe/sink/slo"
)

func TestAlertFlagsObjectives(t *testing.T) {
	cfg := &config{stream: true, targets: []targetSpec{{name: "r1", kind: probe.KindStandby}}}
	base := alertFlags{SLOThreshold: 500 * time.Millisecond, SLOWindow: 672 * time.Hour, SLOEvalInterval: 10 * time.Second}
	tests := []struct {
		name    string
		give    func(f *alertFlags)
		want    int // objectives
		wantErr string
	}{
		{"none", func(*alertFlags) {}, 0, ""},
		{"--slo-objective is the default", func(f *alertFlags) { f.SLOObjective = 0.999 }, 1, ""},
		{"--slo-objective plus per target", func(f *alertFlags) { f.SLOObjective = 0.999; f.SLO = []string{"r1=0.99@2s", "stream=0.9@50ms"} }, 3, ""},
		{"two defaults", func(f *alertFlags) { f.SLOObjective = 0.999; f.SLO = []string{"*=0.99"} }, 0, "both set the default objective"},
		{"bad --slo-objective", func(f *alertFlags) { f.SLOObjective = 1.5 }, 0, "--slo-objective 1.5"},
		{"bad --slo-window", func(f *alertFlags) { f.SLO = []string{"r1=0.99"}; f.SLOWindow = time.Minute }, 0, "--slo-window 1m0s"},
		{"bad --slo-eval-interval", func(f *alertFlags) { f.SLO = []string{"r1=0.99"}; f.SLOEvalInterval = 0 }, 0, "--slo-eval-interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base
			tt.give(&f)
			got, err := f.objectives(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("objectives() error = %v, want one containing %q", err, tt.wantErr)
				}
				if _, ok := err.(*configError); !ok {
					t.Errorf("objectives() error is %T, want *configError (exit 2)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Errorf("objectives() = %+v, want %d", got, tt.want)
			}
		})
	}
}

// TestSLOFlagErrorsExit2 runs the command: a bad --slo, from the command
// line or the YAML file, is one actionable line and exit status 2, before
// anything connects (okPrimary is never dialled).
func TestSLOFlagErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	yamlPath := filepath.Join(dir, "walprobe.yaml")
	if err := os.WriteFile(yamlPath, []byte("standby:\n  r1: host=127.0.0.1 port=1\nslo:\n  r1: \"0.99@soon\"\n  \"*\": \"0.999@1s/28d\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give []string
		want string
	}{
		{"flag: unknown target", []string{"run", "--primary", okPrimary, "--standby", "r1=host=127.0.0.1 port=1", "--slo", "r2=0.99@1s"}, `no target named "r2"`},
		{"flag: bad objective", []string{"run", "--primary", okPrimary, "--no-stream", "--slo", "standby=1.5"}, `objective "1.5"`},
		{"yaml: bad threshold", []string{"--config", yamlPath, "run", "--primary", okPrimary}, `--slo "r1=0.99@soon": threshold "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runT(t, tt.give...)
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
				t.Errorf("stderr has %d lines, want one:\n%s", n+1, stderr)
			}
			assertNoSecret(t, "stderr", stderr, canary)
		})
	}
}

// TestSLOFromYAML: the slo key takes a map (selector: spec) or a list, as
// the standby key does; both reach --slo as SELECTOR=SPEC entries.
func TestSLOFromYAML(t *testing.T) {
	tests := []struct {
		name string
		give string
		want []string
	}{
		{"map", "slo:\n  replica1: 0.999@250ms\n  \"*\": \"99%@1s/7d\"\n", []string{"*=99%@1s/7d", "replica1=0.999@250ms"}},
		{"list", "slo:\n  - standby=0.99@2s\n  - stream=0.9\n", []string{"standby=0.99@2s", "stream=0.9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "walprobe.yaml")
			if err := os.WriteFile(path, []byte(tt.give), 0o600); err != nil {
				t.Fatal(err)
			}
			var c cli
			parser, err := kong.New(&c, kong.Configuration(loadYAML, path), kong.Exit(func(int) {}))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := parser.Parse([]string{"run", "--primary", okPrimary}); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Run.SLO, tt.want) {
				t.Errorf("--slo from YAML = %q, want %q", c.Run.SLO, tt.want)
			}
			if _, err := slo.ParseObjectives("--slo", c.Run.SLO, time.Second, map[string]probe.Kind{"replica1": probe.KindStandby}); err != nil {
				t.Errorf("entries from YAML do not parse: %v", err)
			}
		})
	}
}
