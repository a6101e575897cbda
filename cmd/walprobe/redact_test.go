package main

import (
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// pwCanary is the password of every DSN an operator puts in the wrong
// place below; no exit message may carry it.
const pwCanary = "Canary-Pw-7731"

// misplacedDSNs are the shapes a password takes in a DSN: libpq
// key=value, URI userinfo, URI ?password=, and userinfo percent-encoded
// (so an error that decodes it would leak the raw form). Each is also an
// invalid DSN (bad port), so --primary fails validation instead of
// dialling.
var misplacedDSNs = map[string]string{
	"keyvalue": "host=h port=notaport user=u password=" + pwCanary,
	"userinfo": "postgres://u:" + pwCanary + "@h:99999999/db",
	"query":    "postgresql://u@h:99999999/db?sslmode=disable&password=" + pwCanary,
	"encoded":  "postgres://u:" + strings.ReplaceAll(pwCanary, "-", "%2D") + "@h:99999999/db",
}

// assertNoCanary fails if s carries pwCanary in any form: raw,
// percent-encoded, or folded the way unknown YAML keys are (lower case,
// - as _).
func assertNoCanary(t *testing.T, where, s string) {
	t.Helper()
	low := strings.ToLower(s)
	for _, form := range []string{pwCanary, url.QueryEscape(pwCanary), url.PathEscape(pwCanary),
		strings.ReplaceAll(pwCanary, "-", "%2D"), strings.ReplaceAll(pwCanary, "-", "_")} {
		if strings.Contains(low, strings.ToLower(form)) {
			t.Errorf("%s carries the password (as %q):\n%s", where, form, s)
		}
	}
}

// TestNoExitMessageEchoesAPassword gives a DSN to every flag that takes a
// value, as a stray argument, to the environment and in a YAML file under
// right and wrong keys: each run must exit with a configuration error and
// print no password, whichever layer (kong, YAML, validation) rejects it.
func TestNoExitMessageEchoesAPassword(t *testing.T) {
	const dsn = "$DSN" // replaced by each of misplacedDSNs
	tests := []struct {
		name string
		give []string
		env  map[string]string
		yaml string // written to a file passed with --config
		want int
	}{
		// A shell-quoting slip: the DSN ends up as an argument.
		{name: "stray argument", give: []string{"run", "--primary", "x", dsn}, want: 2},
		{name: "global --config", give: []string{"--config", dsn, "run"}, want: 2},

		// run: the flags kong converts fail in kong, the rest fail in
		// validation (no --primary).
		{name: "run --primary", give: []string{"run", "--primary", dsn}, want: 2},
		{name: "run --standby", give: []string{"run", "--standby", "r1=" + dsn}, want: 2},
		{name: "run --subscriber", give: []string{"run", "--subscriber", "s1=" + dsn}, want: 2},
		{name: "run --endpoint", give: []string{"run", "--endpoint", "e1=" + dsn}, want: 2},
		{name: "run --interval", give: []string{"run", "--interval", dsn}, want: 2},
		{name: "run --probe-id", give: []string{"run", "--probe-id", dsn}, want: 2},
		{name: "run --listen", give: []string{"run", "--listen", dsn}, want: 2},
		{name: "run --lag-threshold", give: []string{"run", "--lag-threshold", dsn}, want: 2},
		{name: "run --stall-after", give: []string{"run", "--stall-after", dsn}, want: 2},
		{name: "run --password-file", give: []string{"run", "--password-file", dsn}, want: 2},
		{name: "run --otlp-endpoint", give: []string{"run", "--otlp-endpoint", dsn}, want: 2},
		{name: "run --otlp-protocol", give: []string{"run", "--otlp-protocol", dsn}, want: 2},
		{name: "run --trace-sample-ratio", give: []string{"run", "--trace-sample-ratio", dsn}, want: 2},
		{name: "run --history-size", give: []string{"run", "--history-size", dsn}, want: 2},
		{name: "run --trace-timeout", give: []string{"run", "--trace-timeout", dsn}, want: 2},
		{name: "run --flush-timeout", give: []string{"run", "--flush-timeout", dsn}, want: 2},
		{name: "run --log-level", give: []string{"run", "--log-level", dsn}, want: 2},
		{name: "run --log-format", give: []string{"run", "--log-format", dsn}, want: 2},
		{name: "run --slo", give: []string{"run", "--slo", dsn}, want: 2},
		{name: "run --slo-objective", give: []string{"run", "--slo-objective", dsn}, want: 2},
		{name: "run --slo-threshold", give: []string{"run", "--slo-threshold", dsn}, want: 2},
		{name: "run --slo-window", give: []string{"run", "--slo-window", dsn}, want: 2},
		{name: "run --slo-eval-interval", give: []string{"run", "--slo-eval-interval", dsn}, want: 2},
		{name: "run --webhook-url", give: []string{"run", "--webhook-url", dsn}, want: 2},
		{name: "run --webhook-secret", give: []string{"run", "--webhook-secret", dsn}, want: 2},
		{name: "run --webhook-format", give: []string{"run", "--webhook-format", dsn}, want: 2},
		{name: "run --alert-lag-warning", give: []string{"run", "--alert-lag-warning", dsn}, want: 2},
		{name: "run --alert-lag-critical", give: []string{"run", "--alert-lag-critical", dsn}, want: 2},
		// With a primary that parses (and refuses connections), the
		// values checked later are reached: --slo before connecting,
		// --otlp-endpoint and --listen after the primary check.
		{name: "run --slo, --primary set", give: []string{"run", "--primary", okPrimary, "--no-stream", "--slo", dsn}, want: 2},
		{name: "run --listen, --primary set", give: []string{"run", "--primary", okPrimary, "--no-stream", "--listen", dsn}, want: 2},
		{name: "run --listen-addr-file", give: []string{"run", "--primary", okPrimary, "--no-stream", "--listen", "256.0.0.1:1", "--listen-addr-file", dsn}, want: 2},
		{name: "run --otlp-endpoint, --primary set", give: []string{"run", "--primary", okPrimary, "--no-stream", "--otlp-endpoint", dsn, "--listen", "256.0.0.1:1"}, want: 2},

		// check: kong's errors exit 2; a configuration the plugin itself
		// rejects is UNKNOWN (3), printed on stdout as the plugin API
		// wants.
		{name: "check --primary", give: []string{"check", "--primary", dsn}, want: 3},
		{name: "check --standby", give: []string{"check", "--standby", "r1=" + dsn}, want: 3},
		{name: "check --subscriber", give: []string{"check", "--subscriber", "s1=" + dsn}, want: 3},
		{name: "check --endpoint", give: []string{"check", "--endpoint", "e1=" + dsn}, want: 3},
		{name: "check --interval", give: []string{"check", "--interval", dsn}, want: 2},
		{name: "check --probe-id", give: []string{"check", "--probe-id", dsn}, want: 3},
		{name: "check --listen", give: []string{"check", "--listen", dsn}, want: 3},
		{name: "check --lag-threshold", give: []string{"check", "--lag-threshold", dsn}, want: 2},
		{name: "check --stall-after", give: []string{"check", "--stall-after", dsn}, want: 2},
		{name: "check --password-file", give: []string{"check", "--password-file", dsn}, want: 3},
		{name: "check --warning", give: []string{"check", "--warning", dsn}, want: 2},
		{name: "check --critical", give: []string{"check", "--critical", dsn}, want: 2},
		{name: "check --timeout", give: []string{"check", "--timeout", dsn}, want: 2},
		{name: "check --format", give: []string{"check", "--format", dsn}, want: 2},

		{name: "setup --primary", give: []string{"setup", "--primary", dsn}, want: 2},
		{name: "setup --role", give: []string{"setup", "--role", dsn}, want: 2},
		{name: "setup --user-publication", give: []string{"setup", "--user-publication", dsn}, want: 2},

		{name: "setup --subscriber", give: []string{"setup", "--subscriber", "s1=" + dsn}, want: 2},
		{name: "setup --sync-timeout", give: []string{"setup", "--sync-timeout", dsn}, want: 2},

		// doctor validates like run; an interval below the minimum makes
		// every form of --primary a configuration error, parsable or not.
		{name: "doctor --primary", give: []string{"doctor", "--primary", dsn, "--interval", "1ms"}, want: 2},
		{name: "doctor --standby", give: []string{"doctor", "--standby", "r1=" + dsn}, want: 2},
		{name: "doctor --subscriber", give: []string{"doctor", "--subscriber", "s1=" + dsn}, want: 2},
		{name: "doctor --endpoint", give: []string{"doctor", "--endpoint", "e1=" + dsn}, want: 2},
		{name: "doctor --interval", give: []string{"doctor", "--interval", dsn}, want: 2},
		{name: "doctor --probe-id", give: []string{"doctor", "--probe-id", dsn}, want: 2},
		{name: "doctor --listen", give: []string{"doctor", "--listen", dsn}, want: 2},
		{name: "doctor --lag-threshold", give: []string{"doctor", "--lag-threshold", dsn}, want: 2},
		{name: "doctor --stall-after", give: []string{"doctor", "--stall-after", dsn}, want: 2},
		{name: "doctor --password-file", give: []string{"doctor", "--password-file", dsn}, want: 2},

		{name: "demo --interval", give: []string{"demo", "--interval", dsn}, want: 2},
		// A stray argument stops demo in kong, before it starts servers.
		{name: "demo --listen", give: []string{"demo", "--listen", dsn, "x"}, want: 2},
		{name: "demo --duration", give: []string{"demo", "--duration", dsn}, want: 2},

		{name: "completion SHELL", give: []string{"completion", dsn}, want: 2},

		{name: "env WALPROBE_INTERVAL", give: []string{"run"}, env: map[string]string{"WALPROBE_INTERVAL": dsn}, want: 2},
		{name: "env WALPROBE_PRIMARY", give: []string{"run"}, env: map[string]string{"WALPROBE_PRIMARY": dsn}, want: 2},

		// YAML: right keys with wrong values, misspelt keys, a DSN as a
		// key, and files that are not valid YAML.
		{name: "yaml interval", give: []string{"run"}, yaml: "interval: \"" + dsn + "\"\n", want: 2},
		{name: "yaml listen", give: []string{"run"}, yaml: "listen: \"" + dsn + "\"\n", want: 2},
		{name: "yaml slo", give: []string{"run"}, yaml: "slo: [\"" + dsn + "\"]\n", want: 2},
		{name: "yaml primary", give: []string{"run"}, yaml: "primary: \"" + dsn + "\"\n", want: 2},
		{name: "yaml standby map", give: []string{"run"}, yaml: "standby:\n  r1: \"" + dsn + "\"\n", want: 2},
		{name: "yaml misspelt key", give: []string{"run"}, yaml: "intervall: \"" + dsn + "\"\n", want: 2},
		{name: "yaml dsn as key", give: []string{"run"}, yaml: "\"" + dsn + "\": 1\n", want: 2},
		{name: "yaml list under scalar key", give: []string{"run"}, yaml: "interval: [\"" + dsn + "\"]\n", want: 2},
		{name: "yaml unterminated quote", give: []string{"run"}, yaml: "primary: \"" + dsn + "\n", want: 2},
		{name: "yaml bad indentation", give: []string{"run"}, yaml: "primary: " + dsn + "\n  - " + dsn + "\n", want: 2},
		{name: "yaml bad map entry", give: []string{"run"}, yaml: "standby:\n  r1: [\"" + dsn + "\"]\n", want: 2},
	}
	// doctor takes run's flags and uses only the servers: without
	// --primary every one of them is a configuration error (2), whether
	// its value parses or not.
	explicit := map[string]bool{}
	for _, tt := range tests {
		explicit[tt.name] = true
	}
	dp, err := newParser(&cli{}, kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	// wait takes run's flags too; without --max-lag every one of them is
	// a configuration error (2) before anything connects. run's agent
	// flags: without --primary, the same.
	for _, n := range dp.Model.Children {
		for _, f := range n.Flags {
			name := n.Name + " --" + f.Name
			if f.IsBool() || explicit[name] {
				continue
			}
			switch {
			case n.Name == "doctor", n.Name == "wait", n.Name == "run" && strings.HasPrefix(f.Name, "agent-"):
				tests = append(tests, struct {
					name string
					give []string
					env  map[string]string
					yaml string
					want int
				}{name: name, give: []string{n.Name, "--" + f.Name, dsn}, want: 2})
			}
		}
	}
	for _, tt := range tests {
		for form, d := range misplacedDSNs {
			t.Run(tt.name+"/"+form, func(t *testing.T) {
				args := make([]string, 0, len(tt.give)+2)
				if tt.yaml != "" {
					path := filepath.Join(t.TempDir(), "walprobe.yaml")
					if err := os.WriteFile(path, []byte(strings.ReplaceAll(tt.yaml, dsn, d)), 0o600); err != nil {
						t.Fatal(err)
					}
					args = append(args, "--config", path)
				}
				for _, a := range tt.give {
					args = append(args, strings.ReplaceAll(a, dsn, d))
				}
				for k, v := range tt.env {
					t.Setenv(k, strings.ReplaceAll(v, dsn, d))
				}
				got, stdout, stderr := runT(t, args...)
				if got != tt.want {
					t.Errorf("run(%q) = %d, want %d\nstderr: %s", args, got, tt.want, stderr)
				}
				assertNoCanary(t, "stdout", stdout)
				assertNoCanary(t, "stderr", stderr)
			})
		}
	}

	// Every flag that takes a value, and every positional argument, has
	// a case above: a new flag must be tried too.
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.name] = true
	}
	p, err := newParser(&cli{}, kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, n := range p.Model.Children {
		for _, f := range n.Flags {
			if !f.IsBool() && !covered[n.Name+" --"+f.Name] {
				missing = append(missing, n.Name+" --"+f.Name)
			}
		}
		for _, a := range n.Positional {
			if name := n.Name + " " + strings.ToUpper(a.Name); !covered[name] {
				missing = append(missing, name)
			}
		}
	}
	for _, f := range p.Model.Flags {
		if !f.IsBool() && !covered["global --"+f.Name] {
			missing = append(missing, "global --"+f.Name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("no case gives a DSN to: %s", strings.Join(missing, ", "))
	}
}
