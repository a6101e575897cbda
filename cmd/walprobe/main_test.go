package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/walprobe/walprobe/test/launch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.Cleanup(launch.Cleanup)) }

// canary is the password every bad-input case carries; it must never
// reach stdout or stderr.
const canary = "canary123"

// okPrimary parses but is never dialled: every case below fails in
// validation, before walprobe connects anywhere.
const okPrimary = "host=127.0.0.1 port=1 dbname=app password=" + canary

// runT calls run with a recover, so a panic fails one case instead of the
// whole binary, and returns the exit status and both streams.
func runT(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("run(%q) panicked: %v", args, p)
			}
		}()
		code = run(args, &out, &errb)
	}()
	return code, out.String(), errb.String()
}

// assertNoSecret fails if any of the secrets appears in s.
func assertNoSecret(t *testing.T, where, s string, secrets ...string) {
	t.Helper()
	for _, pw := range secrets {
		if pw != "" && strings.Contains(s, pw) {
			t.Errorf("%s carries the password %q:\n%s", where, pw, s)
		}
	}
}

func TestRunBadInput(t *testing.T) {
	tests := []struct {
		name string
		give []string
		want int
		// wantIn are substrings of stderr: what is wrong and how to fix it.
		wantIn []string
		// maxLines bounds stderr's line count: one line, or a short
		// joined list.
		maxLines int
	}{
		{
			name:     "key=value DSN with a bad port",
			give:     []string{"run", "--primary", "host=x port=notaport password=" + canary},
			want:     2,
			wantIn:   []string{"--primary: invalid DSN", "key=value"},
			maxLines: 1,
		},
		{
			name:     "URI DSN with an out-of-range port",
			give:     []string{"run", "--primary", "postgres://u:" + canary + "@h:99999999/db"},
			want:     2,
			wantIn:   []string{"--primary: invalid DSN", "postgres://user@host:5432/db"},
			maxLines: 1,
		},
		{
			name:     "URI DSN with a percent-encoded password and a bad port",
			give:     []string{"run", "--primary", "postgres://u:canary%31%323@h:notaport/db"},
			want:     2,
			wantIn:   []string{"--primary: invalid DSN"},
			maxLines: 1,
		},
		{
			name:     "missing --primary",
			give:     []string{"run"},
			want:     2,
			wantIn:   []string{"--primary is required", "WALPROBE_PRIMARY"},
			maxLines: 1,
		},
		{
			name:     "zero interval",
			give:     []string{"run", "--primary", okPrimary, "--interval", "0s"},
			want:     2,
			wantIn:   []string{"--interval 0s: must be at least"},
			maxLines: 1,
		},
		{
			name:     "negative interval",
			give:     []string{"run", "--primary", okPrimary, "--interval=-1s"},
			want:     2,
			wantIn:   []string{"--interval -1s: must be at least"},
			maxLines: 1,
		},
		{
			name: "duplicate target names across kinds",
			give: []string{"run", "--primary", okPrimary,
				"--standby", "r1=host=127.0.0.1 port=2 password=" + canary,
				"--endpoint", "r1=host=127.0.0.1 port=3 password=" + canary},
			want:     2,
			wantIn:   []string{`duplicate target name "r1"`, "give every target its own name"},
			maxLines: 1,
		},
		{
			name:     "target named stream clashes with the WAL stream target",
			give:     []string{"run", "--primary", okPrimary, "--standby", "stream=host=127.0.0.1 port=2"},
			want:     2,
			wantIn:   []string{`duplicate target name "stream"`},
			maxLines: 1,
		},
		{
			name:     "--standby without =",
			give:     []string{"run", "--primary", okPrimary, "--standby", "postgres://u:" + canary + "@h/db"},
			want:     2,
			wantIn:   []string{"--standby: want NAME=DSN", "replica1="},
			maxLines: 1,
		},
		{
			name:     "several problems are reported together",
			give:     []string{"run", "--interval", "0s", "--standby", "nodsn", "--subscriber", "s1=port=x password=" + canary},
			want:     2,
			wantIn:   []string{"--primary is required", "--interval 0s", "--standby: want NAME=DSN", "--subscriber s1: invalid DSN"},
			maxLines: 4,
		},
		{
			name:     "unknown YAML key suggests the nearest flag",
			give:     []string{"--config", "testdata/unknown_key.yaml", "run"},
			want:     2,
			wantIn:   []string{`unknown key "intervall"`, `did you mean "interval"?`},
			maxLines: 1,
		},
		{
			name:     "YAML value of the wrong type",
			give:     []string{"--config", "testdata/wrong_type.yaml", "run"},
			want:     2,
			wantIn:   []string{"--interval", "banana"},
			maxLines: 1,
		},
		{
			name:     "YAML zero interval",
			give:     []string{"--config", "testdata/zero_interval.yaml", "run"},
			want:     2,
			wantIn:   []string{"--interval 0s: must be at least"},
			maxLines: 1,
		},
		{
			name:     "YAML duplicate target names",
			give:     []string{"--config", "testdata/duplicate_targets.yaml", "run"},
			want:     2,
			wantIn:   []string{`duplicate target name "r1"`},
			maxLines: 1,
		},
		{
			name:     "YAML primary given as a map",
			give:     []string{"--config", "testdata/primary_map.yaml", "run"},
			want:     2,
			wantIn:   []string{`key "primary": want a single value, not a map`},
			maxLines: 1,
		},
		{
			name:     "YAML primary given as a list",
			give:     []string{"--config", "testdata/primary_list.yaml", "run"},
			want:     2,
			wantIn:   []string{`key "primary": want a single value, not a list`},
			maxLines: 1,
		},
		{
			name:     "YAML standby as a map of maps",
			give:     []string{"--config", "testdata/standby_nested_map.yaml", "run"},
			want:     2,
			wantIn:   []string{`key "standby", entry "r1"`},
			maxLines: 1,
		},
		{
			name:     "YAML standby as a list of maps",
			give:     []string{"--config", "testdata/standby_list_of_maps.yaml", "run"},
			want:     2,
			wantIn:   []string{`key "standby", item 1`},
			maxLines: 1,
		},
		{
			// The map form is accepted: only the zero interval is wrong.
			name:     "YAML standby as a name: DSN map",
			give:     []string{"--config", "testdata/standby_map.yaml", "run"},
			want:     2,
			wantIn:   []string{"--interval 0s: must be at least"},
			maxLines: 1,
		},
		{
			name:     "file that is not YAML",
			give:     []string{"--config", "testdata/not_yaml.yaml", "run"},
			want:     2,
			wantIn:   []string{"not valid YAML"},
			maxLines: 1,
		},
		{
			name:     "missing config file",
			give:     []string{"--config", "testdata/nope.yaml", "run"},
			want:     2,
			wantIn:   []string{"testdata/nope.yaml"},
			maxLines: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runT(t, tt.give...)
			if code != tt.want {
				t.Errorf("exit status %d, want %d\nstderr:\n%s", code, tt.want, stderr)
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if stderr == "" || len(lines) > tt.maxLines {
				t.Errorf("stderr has %d lines, want 1..%d:\n%s", len(lines), tt.maxLines, stderr)
			}
			if !strings.HasPrefix(stderr, "walprobe: ") {
				t.Errorf("stderr does not start with %q:\n%s", "walprobe: ", stderr)
			}
			assertNoSecret(t, "stdout", stdout, canary)
			assertNoSecret(t, "stderr", stderr, canary)
		})
	}
}

// TestConfigPrecedence shows flags win over WALPROBE_* env, which wins over
// the config file. Each source gives a different (invalid) interval, so the
// error names the value that was chosen.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "walprobe.yaml")
	if err := os.WriteFile(file, []byte("primary: host=127.0.0.1\ninterval: 10ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"file", "", nil, "--interval 10ms"},
		{"env over file", "20ms", nil, "--interval 20ms"},
		{"flag over env", "20ms", []string{"--interval", "30ms"}, "--interval 30ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("WALPROBE_INTERVAL", tt.env)
			}
			var out, errb bytes.Buffer
			code := run(append([]string{"--config", file, "run"}, tt.args...), &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errb.String(), tt.want)
			}
		})
	}
}
