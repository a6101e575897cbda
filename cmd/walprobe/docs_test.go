package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"gopkg.in/yaml.v3"

	"github.com/walprobe/walprobe/sink/alert"
	"github.com/walprobe/walprobe/sink/webhook"
)

// The reference docs in docs/ are generated from, or checked against, the
// code. `go test ./cmd/walprobe -run TestConfigDoc -update` rewrites the
// generated ones.

var updateDocs = flag.Bool("update", false, "rewrite generated docs (docs/config.md)")

//go:generate go test -run TestConfigDoc -update .

const docsDir = "../../docs"

// cliModel returns the kong model walprobe parses with.
func cliModel(t *testing.T) *kong.Application {
	t.Helper()
	p, err := newParser(&cli{}, kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	return p.Model
}

// docFlag is one configurable key.
type docFlag struct {
	cmd  string // "" for global flags
	flag *kong.Flag
}

// configFlags returns every flag a user can set, global ones first, then
// each command's in declaration order. --help is not configuration.
func configFlags(app *kong.Application) []docFlag {
	var out []docFlag
	for _, f := range app.Node.Flags {
		if f.Name != "help" && !f.Hidden {
			out = append(out, docFlag{"", f})
		}
	}
	for _, c := range app.Node.Children {
		if c.Hidden {
			continue
		}
		for _, f := range c.Flags {
			if !f.Hidden {
				out = append(out, docFlag{c.Name, f})
			}
		}
	}
	return out
}

// yamlKey is the key a flag has in the --config file.
func yamlKey(f *kong.Flag) string { return strings.ReplaceAll(f.Name, "-", "_") }

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// renderConfigDoc is docs/config.md.
func renderConfigDoc(app *kong.Application) string {
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from the command line model by
     go test ./cmd/walprobe -run TestConfigDoc -update
     Do not edit: TestConfigDoc fails when this file and the flags differ. -->

Every setting is a command line flag. The same setting can come from:

- the **YAML file** given with ` + "`--config FILE`" + ` (or ` + "`WALPROBE_CONFIG`" + `): its keys are the flag
  names, with ` + "`_`" + ` or ` + "`-`" + ` (` + "`probe_id`" + ` or ` + "`probe-id`" + `). Repeatable flags take a list
  (` + "`standby: [\"replica1=DSN\"]`" + `) or a map (` + "`standby: {replica1: DSN}`" + `). An unknown key is an
  error that names the nearest known key;
- a **` + "`WALPROBE_<FLAG>`" + ` environment variable** (upper case, ` + "`-`" + ` becomes ` + "`_`" + `); a repeatable
  flag's variable takes one value (` + "`WALPROBE_STANDBY='replica1=host=db2 dbname=app'`" + `).

A flag on the command line wins over the environment, which wins over the file. Durations are
Go durations (` + "`250ms`, `1s`, `1h30m`" + `). Bad values exit with status 2 and one line naming the key.
DSNs are libpq-compatible (URI or key=value); the ` + "`PG*`" + ` environment variables and ` + "`~/.pgpass`" + `
(or ` + "`PGPASSFILE`" + `) apply to them, so passwords need not appear in any flag or file. The
` + "`OTEL_EXPORTER_OTLP_*`" + `, ` + "`OTEL_SERVICE_NAME`" + ` and ` + "`OTEL_RESOURCE_ATTRIBUTES`" + ` variables apply to the OTLP
exporters; the flags win over them.

`)
	section := ""
	for i, df := range configFlags(app) {
		if i == 0 || df.cmd != section {
			section = df.cmd
			if section == "" {
				b.WriteString("## Global flags\n\nAccepted before or after the command.\n\n")
			} else {
				fmt.Fprintf(&b, "\n## walprobe %s\n\n", section)
				for _, c := range app.Node.Children {
					if c.Name == section {
						b.WriteString(mdEscape(c.Help) + "\n\n")
					}
				}
			}
			b.WriteString("| flag | YAML key | environment | default | description |\n|---|---|---|---|---|\n")
		}
		f := df.flag
		name := "`--" + f.Name + "`"
		if f.Tag.Negatable != "" {
			name = "`--[no-]" + f.Name + "`"
		}
		if ph := placeholder(f); ph != "" {
			name = "`--" + f.Name + "=" + ph + "`"
		}
		def := "–"
		if f.HasDefault {
			def = "`" + f.Default + "`"
		}
		help := f.Help
		if f.Enum != "" {
			help += " One of: " + strings.ReplaceAll(f.Enum, ",", ", ") + "."
		}
		if f.IsSlice() && !strings.Contains(strings.ToLower(help), "repeatable") {
			help += " Repeatable."
		}
		envs := make([]string, 0, len(f.Envs))
		for _, e := range f.Envs {
			envs = append(envs, "`"+e+"`")
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s |\n", mdEscape(name), yamlKey(f), strings.Join(envs, ", "), def, mdEscape(help))
	}
	return b.String()
}

// placeholder names a flag's value: its placeholder tag, else its type.
func placeholder(f *kong.Flag) string {
	if f.IsBool() {
		return ""
	}
	if f.PlaceHolder != "" {
		return f.PlaceHolder
	}
	t := f.Target.Type()
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "DURATION"
	case f.Enum != "":
		return strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
	case t.Kind() == reflect.String:
		return "STRING"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "NUMBER"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "INT"
	}
	return "VALUE"
}

// TestConfigDoc fails when docs/config.md is not what the flags generate:
// a flag added, renamed or removed, or a default changed.
func TestConfigDoc(t *testing.T) {
	app := cliModel(t)
	want := renderConfigDoc(app)
	path := filepath.Join(docsDir, "config.md")
	if *updateDocs {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run `go test ./cmd/walprobe -run TestConfigDoc -update`", err)
	}
	if string(got) != want {
		t.Errorf("docs/config.md is stale: run `go test ./cmd/walprobe -run TestConfigDoc -update`\n%s", firstDiff(string(got), want))
	}
	// Independently of the generator: every flag's YAML key, variable and
	// default appear on its row.
	rows := map[string]string{} // "cmd flag" → table row; cmd "" is global
	section := ""
	for _, line := range strings.Split(string(got), "\n") {
		switch {
		case line == "## Global flags":
			section = ""
		case strings.HasPrefix(line, "## walprobe "):
			section = strings.TrimPrefix(line, "## walprobe ")
		}
		if m := regexp.MustCompile("^\\| `--(?:\\[no-\\])?([a-z0-9-]+)").FindStringSubmatch(line); m != nil {
			rows[section+" "+m[1]] = line
		}
	}
	for _, df := range configFlags(app) {
		row, ok := rows[df.cmd+" "+df.flag.Name]
		if !ok {
			t.Errorf("docs/config.md: no row for --%s (command %q)", df.flag.Name, df.cmd)
			continue
		}
		if !strings.Contains(row, "| `"+yamlKey(df.flag)+"` |") {
			t.Errorf("docs/config.md: --%s: YAML key %s missing: %s", df.flag.Name, yamlKey(df.flag), row)
		}
		if df.flag.HasDefault && !strings.Contains(row, "| `"+df.flag.Default+"` |") {
			t.Errorf("docs/config.md: --%s (%s): default is %q, row says: %s", df.flag.Name, df.cmd, df.flag.Default, row)
		}
		for _, e := range df.flag.Envs {
			if !strings.Contains(row, "`"+e+"`") {
				t.Errorf("docs/config.md: --%s: variable %s missing: %s", df.flag.Name, e, row)
			}
		}
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n  have: %s\n  want: %s", i+1, gl, wl)
		}
	}
	return ""
}

// knownNames returns every flag name (without --) and environment
// variable of the model, and every YAML key.
func knownNames(app *kong.Application) (flags, envs, keys map[string]bool) {
	flags, envs, keys = map[string]bool{}, map[string]bool{}, map[string]bool{}
	_ = kong.Visit(app, func(node kong.Visitable, next kong.Next) error {
		if f, ok := node.(*kong.Flag); ok {
			flags[f.Name] = true
			if f.Tag.Negatable != "" {
				flags["no-"+f.Name] = true
			}
			keys[yamlKey(f)] = true
			for _, e := range f.Envs {
				envs[e] = true
			}
		}
		return next(nil)
	})
	return flags, envs, keys
}

// TestHelpHasExamples: every command's --help shows an Examples section
// with at least one walprobe command line.
func TestHelpHasExamples(t *testing.T) {
	app := cliModel(t)
	example := regexp.MustCompile(`(?m)^\s+(?:[A-Z_]+=\S+ \\\n\s+)?(?:source <\()?walprobe `)
	for _, c := range app.Node.Children {
		t.Run(c.Name, func(t *testing.T) {
			code, out, errOut := runT(t, c.Name, "--help")
			if code != 0 {
				t.Fatalf("walprobe %s --help: exit %d\n%s", c.Name, code, errOut)
			}
			_, ex, ok := strings.Cut(out, "Examples:")
			if !ok {
				t.Fatalf("walprobe %s --help has no Examples section:\n%s", c.Name, out)
			}
			if !example.MatchString(ex) {
				t.Errorf("walprobe %s --help: Examples has no walprobe command line:\n%s", c.Name, ex)
			}
		})
	}
}

// TestHelpExamplesParse: every example command line in the help text
// names real commands and flags (kong parses it).
func TestHelpExamplesParse(t *testing.T) {
	app := cliModel(t)
	flags, _, _ := knownNames(app)
	for _, c := range app.Node.Children {
		_, out, _ := runT(t, c.Name, "--help")
		_, ex, _ := strings.Cut(out, "Examples:")
		for _, m := range regexp.MustCompile(`--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(ex, -1) {
			if !flags[m[1]] {
				t.Errorf("walprobe %s --help: example uses --%s, which is no flag", c.Name, m[1])
			}
		}
	}
}

// TestCompletion: `walprobe completion SHELL` prints a hook naming this
// binary, and the binary answers the shell's completion requests from the
// kong model.
func TestCompletion(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := runT(t, "completion", sh)
		if code != 0 {
			t.Fatalf("completion %s: exit %d: %s", sh, code, errOut)
		}
		if !strings.Contains(out, self) || !strings.Contains(out, "walprobe") {
			t.Errorf("completion %s does not hook %s to walprobe:\n%s", sh, self, out)
		}
	}
	if code, _, _ := runT(t, "completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
	tests := []struct {
		give string
		want []string
	}{
		{"walprobe ", []string{"run", "check", "setup", "doctor", "wait", "demo", "version", "completion"}},
		{"walprobe ch", []string{"check"}},
		{"walprobe run --log-f", []string{"--log-format"}},
		{"walprobe run --log-format ", []string{"text", "json"}},
		{"walprobe check --format ", []string{"nagios", "pgpool"}},
		{"walprobe completion ", []string{"bash", "zsh", "fish"}},
		{"walprobe setup --print", []string{"--print-sql"}},
	}
	for _, tt := range tests {
		t.Setenv("COMP_LINE", tt.give)
		t.Setenv("COMP_POINT", fmt.Sprint(len(tt.give)))
		code, out, errOut := runT(t, "ignored", "by", "completion")
		if code != 0 {
			t.Errorf("COMP_LINE=%q: exit %d: %s", tt.give, code, errOut)
		}
		got := strings.Fields(out)
		sort.Strings(got)
		want := append([]string(nil), tt.want...)
		sort.Strings(want)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("COMP_LINE=%q: got %q, want %q", tt.give, got, want)
		}
	}
}

// TestBashCompletion sources the bash hook in a real bash and runs the
// completion command it registered, the way bash does on TAB.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash not found: apt-get install -y bash")
	}
	bin := buildWalprobe(t)
	script, err := exec.Command(bin, "completion", "bash").Output()
	if err != nil {
		t.Fatalf("walprobe completion bash: %v", err)
	}
	path := filepath.Join(t.TempDir(), "walprobe.bash")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n rejects the script: %v\n%s\n%s", err, out, script)
	}
	// What bash does on TAB for `walprobe se<TAB>`: run the -C command with
	// COMP_LINE and COMP_POINT set and the command, word and previous word
	// as arguments.
	const probe = `set -eu
source "$1"
spec=$(complete -p walprobe)
case "$spec" in *" -C "*) ;; *) echo "no -C in: $spec" >&2; exit 1 ;; esac
cmd=${spec#* -C }
cmd=${cmd% walprobe}
COMP_LINE="$2" COMP_POINT=${#2} eval "$cmd" walprobe "${2##* }" walprobe
`
	for give, want := range map[string]string{
		"walprobe se":                "setup",
		"walprobe run --subscr":      "--subscriber",
		"walprobe demo --dur":        "--duration",
		"walprobe run --webhook-for": "--webhook-format",
	} {
		out, err := exec.Command(bash, "-c", probe, "bash", path, give).CombinedOutput()
		if err != nil {
			t.Fatalf("completing %q in bash: %v\n%s", give, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("bash completes %q to %q, want %q", give, got, want)
		}
	}
}

// buildWalprobe builds this command into a temporary directory.
func buildWalprobe(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "walprobe")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// readDoc reads docs/NAME.
func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(docsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPrivilegesDoc: each SQL block in docs/privileges.md preceded by
// <!-- walprobe ARGS --> is exactly what `walprobe ARGS` prints.
func TestPrivilegesDoc(t *testing.T) {
	doc := readDoc(t, "privileges.md")
	blocks := regexp.MustCompile("(?s)<!-- walprobe ([^>]*?) -->\n```sql\n(.*?)```").FindAllStringSubmatch(doc, -1)
	if len(blocks) < 2 {
		t.Fatalf("docs/privileges.md: want the primary and subscriber SQL blocks, found %d", len(blocks))
	}
	for _, b := range blocks {
		args := strings.Fields(b[1])
		code, out, errOut := runT(t, args...)
		if code != 0 {
			t.Fatalf("walprobe %s: exit %d: %s", b[1], code, errOut)
		}
		if out != b[2] {
			t.Errorf("docs/privileges.md: the block for `walprobe %s` differs from its output\n%s", b[1], firstDiff(b[2], out))
		}
	}
}

// docTable returns the first column (backquoted) of every table row in
// the section of doc that starts at heading and ends at the next ## .
func docTable(t *testing.T, doc, heading string) []string {
	t.Helper()
	_, sec, ok := strings.Cut(doc, heading)
	if !ok {
		t.Fatalf("doc has no section %q", heading)
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	var out []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(sec, -1) {
		out = append(out, m[1])
	}
	return out
}

// flatKeys lists the keys of a JSON value: nested objects as a.b, lists by
// their elements.
func flatKeys(prefix string, v any, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			out[prefix+k] = true
			if m, ok := e.(map[string]any); ok {
				delete(out, prefix+k)
				flatKeys(prefix+k+".", m, out)
			}
		}
	case []any:
		for _, e := range x {
			flatKeys(prefix, e, out)
		}
	}
}

// TestAlertsDoc posts a firing and a resolved alert in every format
// through the real notifier to a test receiver and checks the bodies,
// headers and alert names against docs/alerts.md.
func TestAlertsDoc(t *testing.T) {
	doc := readDoc(t, "alerts.md")
	type req struct {
		header http.Header
		body   []byte
	}
	reqs := make(chan req, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- req{r.Header.Clone(), b}
	}))
	defer srv.Close()
	const secret = "doc-secret"
	bodies := map[webhook.Format][2]req{}
	for _, f := range []webhook.Format{webhook.FormatWalprobe, webhook.FormatAlertmanager, webhook.FormatSlack} {
		n, err := webhook.New(webhook.Config{URL: srv.URL + "/hook", Secret: secret, Format: f}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		start := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
		var got [2]req
		for i, a := range []alert.Alert{
			{Name: alert.LagWarning, Target: "replica1", Severity: "warning", Summary: "standby replica1 lags 6.2s (threshold 5s)", Firing: true, StartedAt: start},
			{Name: alert.LagWarning, Target: "replica1", Severity: "warning", Summary: "standby replica1 lags 120ms, under 5s", EndedAt: start.Add(150 * time.Second)},
		} {
			if !n.Notify(a) {
				t.Fatalf("%s: notify %v refused", f, a.Firing)
			}
			select {
			case got[i] = <-reqs:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no request within 10 s", f)
			}
		}
		cancel()
		<-done
		bodies[f] = got
		for _, r := range got {
			sig := r.header.Get(webhook.SignatureHeader)
			if !webhook.Verify([]byte(secret), r.body, sig) {
				t.Errorf("%s: %s %q does not verify", f, webhook.SignatureHeader, sig)
			}
			for _, h := range docTable(t, doc, "## Headers") {
				if r.header.Get(h) == "" {
					t.Errorf("%s: documented header %s not sent", f, h)
				}
				if v := r.header.Get(h); h != webhook.SignatureHeader && !strings.Contains(doc, "| `"+h+"` | `"+v+"` |") {
					t.Errorf("docs/alerts.md: header %s is sent as %q", h, v)
				}
			}
		}
	}

	// walprobe format: the documented fields, exactly; ended_at only when resolved.
	fields := docTable(t, doc, "## `--webhook-format walprobe` (default), version "+webhook.PayloadVersion)
	for i, r := range bodies[webhook.FormatWalprobe] {
		var v map[string]any
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, f := range fields {
			want[f] = f != "ended_at" || i == 1
		}
		got := map[string]bool{}
		flatKeys("", v, got)
		for f, w := range want {
			if w != got[f] {
				t.Errorf("walprobe body %d: field %s present %v, docs/alerts.md says %v:\n%s", i, f, got[f], w, r.body)
			}
		}
		for f := range got {
			if _, ok := want[f]; !ok {
				t.Errorf("walprobe body has field %s that docs/alerts.md does not document:\n%s", f, r.body)
			}
		}
		if v["version"] != webhook.PayloadVersion || !strings.Contains(doc, "payload version, `\""+webhook.PayloadVersion+"\"`") {
			t.Errorf("version: body %v, code %s: update docs/alerts.md", v["version"], webhook.PayloadVersion)
		}
	}
	// Alertmanager: the documented fields, endsAt only when resolved.
	fields = docTable(t, doc, "## `--webhook-format alertmanager`")
	for i, r := range bodies[webhook.FormatAlertmanager] {
		var v any
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		flatKeys("", v, got)
		for _, f := range fields {
			if want := f != "endsAt" || i == 1; got[f] != want {
				t.Errorf("alertmanager body %d: %s present %v, want %v:\n%s", i, f, got[f], want, r.body)
			}
			delete(got, f)
		}
		for f := range got {
			t.Errorf("alertmanager body has %s that docs/alerts.md does not document:\n%s", f, r.body)
		}
	}
	// Slack: {"text": "[FIRING] …"} / "[RESOLVED] …".
	for i, r := range bodies[webhook.FormatSlack] {
		var v map[string]string
		if err := json.Unmarshal(r.body, &v); err != nil || len(v) != 1 {
			t.Fatalf("slack body %s: want {\"text\": …} (%v)", r.body, err)
		}
		prefix := [2]string{"[FIRING] ", "[RESOLVED] "}[i]
		if !strings.HasPrefix(v["text"], prefix+alert.LagWarning+" replica1 (warning): ") {
			t.Errorf("slack text %q does not read as docs/alerts.md says", v["text"])
		}
	}

	// Alert names: every name the code raises is documented, and every
	// documented name is raised somewhere.
	documented := map[string]bool{}
	for _, n := range docTable(t, doc, "## Alerts") {
		documented[n] = true
	}
	inCode := map[string]bool{}
	for _, src := range []struct{ glob, re string }{
		{"../../sink/alert/*.go", `(?m)^\s*[A-Z][A-Za-z]+\s*=\s*"([a-z]+_[a-z_0-9]+)"`},
		{"../../sink/slo/*.go", `\{"(slo_[a-z_0-9]+)"`},
	} {
		files, _ := filepath.Glob(src.glob)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range regexp.MustCompile(src.re).FindAllStringSubmatch(string(b), -1) {
				inCode[m[1]] = true
			}
		}
	}
	if len(inCode) < 5 {
		t.Fatalf("found only %d alert names in sink/alert and sink/slo: the pattern is stale", len(inCode))
	}
	for n := range inCode {
		if !documented[n] {
			t.Errorf("alert %s is raised by the code but not in docs/alerts.md", n)
		}
	}
	for n := range documented {
		if !inCode[n] {
			t.Errorf("docs/alerts.md documents alert %s, which no code raises", n)
		}
	}
}

// TestTroubleshootingDoc: every message fragment docs/troubleshooting.md
// lists as a heading still occurs in the code (outside tests).
func TestTroubleshootingDoc(t *testing.T) {
	doc := readDoc(t, "troubleshooting.md")
	var code strings.Builder
	err := filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "../.." || d.Name() == "testdata" || d.Name() == "docs") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			code.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	src := code.String()
	headings := regexp.MustCompile("(?m)^### (?:`` (.+) ``|`([^`]+)`)$").FindAllStringSubmatch(doc, -1)
	if len(headings) < 20 {
		t.Fatalf("docs/troubleshooting.md: only %d message headings found", len(headings))
	}
	for _, h := range headings {
		msg := h[1] + h[2]
		if !strings.Contains(src, msg) {
			t.Errorf("docs/troubleshooting.md documents %q, which no longer occurs in the code: update the entry", msg)
		}
	}
}

// parseArgs parses args with walprobe's parser without running anything;
// it checks flag names, values and the --config file's keys.
func parseArgs(t *testing.T, args []string) error {
	t.Helper()
	p, err := newParser(&cli{}, kong.Writers(io.Discard, io.Discard), kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Parse(args)
	return err
}

// checkEnvNames fails for a WALPROBE_* variable that is no flag's, and for
// any other variable walprobe does not read.
func checkEnvNames(t *testing.T, where string, names []string) {
	t.Helper()
	_, envs, _ := knownNames(cliModel(t))
	for _, n := range names {
		switch {
		case envs[n]:
		case strings.HasPrefix(n, "WALPROBE_"):
			t.Errorf("%s: %s is no walprobe variable (see docs/config.md)", where, n)
		case strings.HasPrefix(n, "OTEL_"), strings.HasPrefix(n, "PG"):
			// read by the OTLP exporters and by libpq-style DSN parsing
		default:
			t.Errorf("%s: walprobe does not read %s", where, n)
		}
	}
}

// TestSystemdUnit verifies deploy/systemd/walprobe.service with
// systemd-analyze, checks its hardening, and parses its command line with
// the sample config and env files.
func TestSystemdUnit(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found: apt-get install -y systemd")
	}
	unit, err := os.ReadFile("../../deploy/systemd/walprobe.service")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildWalprobe(t)
	dir := t.TempDir()
	// verify checks that ExecStart's binary exists: point it at ours.
	local := strings.ReplaceAll(string(unit), "/usr/local/bin/walprobe", bin)
	path := filepath.Join(dir, "walprobe.service")
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	// verify also loads the units installed on this machine and warns
	// about theirs (Debian's pgpool2.service): judge only what it says
	// about ours.
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "walprobe") {
			ours = append(ours, line)
		}
	}
	if len(ours) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for walprobe.service: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	} else {
		t.Logf("systemd-analyze security: exposure %s", m[1])
		var level float64
		fmt.Sscan(string(m[1]), &level)
		if level > 2.0 {
			t.Errorf("exposure level %.1f, want <= 2.0 (OK):\n%s", level, out)
		}
	}
	directives := map[string][]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			directives[k] = append(directives[k], v)
		}
	}
	for k, want := range map[string]string{
		"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"CapabilityBoundingSet": "", "SystemCallFilter": "@system-service", "Restart": "on-failure",
		"RestartPreventExitStatus": "2", "MemoryMax": "*", "LoadCredential": "*", "EnvironmentFile": "*",
	} {
		vs, ok := directives[k]
		if !ok || (want != "*" && !slices.Contains(vs, want)) {
			t.Errorf("walprobe.service: want %s=%s, have %q", k, want, vs)
		}
	}

	// The command line, with %d (the credentials directory) holding the
	// sample config and a password file.
	exec0 := directives["ExecStart"][0]
	creds := filepath.Join(dir, "creds")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile("../../deploy/systemd/walprobe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"walprobe.yaml": sample, "password": []byte("x\n")} {
		if err := os.WriteFile(filepath.Join(creds, name), body, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	args := strings.Fields(strings.ReplaceAll(exec0, "%d", creds))[1:]
	if err := parseArgs(t, args); err != nil {
		t.Errorf("ExecStart %q with deploy/systemd/walprobe.yaml: %v", exec0, err)
	}
	env, err := os.ReadFile("../../deploy/systemd/walprobe.env")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^#?([A-Z][A-Z0-9_]*)=`).FindAllStringSubmatch(string(env), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatal("walprobe.env sets nothing")
	}
	checkEnvNames(t, "deploy/systemd/walprobe.env", names)
}

// yamlDig walks nested maps and lists: a string key indexes a map, an int a list.
func yamlDig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// asList is v as a list, nil when it is none.
func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// TestK8sManifests parses deploy/k8s, checks the Deployment's probes,
// secrets and security context, and parses its command line and the
// Secret's config file with walprobe's own parser.
func TestK8sManifests(t *testing.T) {
	files, err := filepath.Glob("../../deploy/k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	objs := map[string]map[string]any{} // kind → object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		for {
			var o map[string]any
			if err := dec.Decode(&o); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			kind, _ := o["kind"].(string)
			if kind == "" || o["apiVersion"] == nil {
				t.Errorf("%s: a document without apiVersion and kind", f)
				continue
			}
			if kind != "Kustomization" && yamlDig(o, "metadata", "name") == nil {
				t.Errorf("%s: %s without metadata.name", f, kind)
			}
			objs[kind] = o
		}
	}
	for _, k := range []string{"Deployment", "Service", "PodMonitor", "Secret", "Kustomization"} {
		if objs[k] == nil {
			t.Fatalf("deploy/k8s has no %s", k)
		}
	}
	for _, r := range asList(yamlDig(objs["Kustomization"], "resources")) {
		if s, _ := r.(string); s == "" {
			t.Errorf("kustomization.yaml: resource %v is not a file name", r)
		} else if _, err := os.Stat(filepath.Join("../../deploy/k8s", s)); err != nil {
			t.Errorf("kustomization.yaml: %v", err)
		}
	}

	d := objs["Deployment"]
	pod := yamlDig(d, "spec", "template", "spec")
	c := yamlDig(pod, "containers", 0)
	if yamlDig(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("Deployment: want securityContext.runAsNonRoot: true")
	}
	if yamlDig(c, "securityContext", "readOnlyRootFilesystem") != true || yamlDig(c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Error("Deployment: want readOnlyRootFilesystem: true and allowPrivilegeEscalation: false")
	}
	// Probes on the paths the HTTP API serves.
	api := ""
	apiFiles, _ := filepath.Glob("../../sink/api/*.go")
	for _, f := range apiFiles {
		b, _ := os.ReadFile(f)
		api += string(b)
	}
	for probe, want := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		got, _ := yamlDig(c, probe, "httpGet", "path").(string)
		if got != want {
			t.Errorf("Deployment: %s on %q, want %s", probe, got, want)
		}
		if !strings.Contains(api, `"GET `+want+`"`) {
			t.Errorf("sink/api serves no GET %s, which the %s uses", want, probe)
		}
	}
	port, _ := yamlDig(c, "ports", 0, "name").(string)
	if got := yamlDig(objs["PodMonitor"], "spec", "podMetricsEndpoints", 0, "port"); got != port {
		t.Errorf("PodMonitor scrapes port %v, the container's is %q", got, port)
	}
	for _, o := range []any{yamlDig(d, "spec", "template", "metadata"), yamlDig(objs["Service"], "metadata")} {
		if yamlDig(o, "annotations", "prometheus.io/scrape") != "true" {
			t.Errorf("want the prometheus.io/scrape annotation on %v", yamlDig(o, "name"))
		}
	}

	// Environment: real variables; secrets from secretKeyRef.
	var names []string
	secretRefs := 0
	for _, e := range asList(yamlDig(c, "env")) {
		n, _ := yamlDig(e, "name").(string)
		names = append(names, n)
		if yamlDig(e, "valueFrom", "secretKeyRef", "name") == yamlDig(objs["Secret"], "metadata", "name") {
			secretRefs++
		}
	}
	checkEnvNames(t, "deploy/k8s Deployment env", names)
	if secretRefs == 0 {
		t.Error("Deployment: no env from the Secret (secretKeyRef)")
	}

	// The command line, with the Secret's walprobe.yaml where it is mounted.
	cfg, _ := yamlDig(objs["Secret"], "stringData", "walprobe.yaml").(string)
	if cfg == "" {
		t.Fatal("Secret has no stringData walprobe.yaml")
	}
	mount, _ := yamlDig(c, "volumeMounts", 0, "mountPath").(string)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "walprobe.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range asList(yamlDig(c, "args")) {
		s, _ := a.(string)
		args = append(args, strings.ReplaceAll(s, mount, dir))
	}
	if !slices.Contains(args, "--config="+filepath.Join(dir, "walprobe.yaml")) {
		t.Errorf("Deployment args %q do not read the mounted config %s/walprobe.yaml", args, mount)
	}
	if err := parseArgs(t, args); err != nil {
		t.Errorf("Deployment args %q with the Secret's walprobe.yaml: %v", args, err)
	}
}

// TestDocsNameRealFlags: every --flag, WALPROBE_* variable and
// `walprobe COMMAND` the docs mention exists.
func TestDocsNameRealFlags(t *testing.T) {
	app := cliModel(t)
	flags, envs, _ := knownNames(app)
	cmds := map[string]bool{}
	for _, c := range app.Node.Children {
		cmds[c.Name] = true
	}
	files, err := filepath.Glob(filepath.Join(docsDir, "*.md"))
	if err != nil || len(files) < 7 {
		t.Fatalf("docs/*.md: %d files (%v)", len(files), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(b)
		for _, m := range regexp.MustCompile(`(?:^|[\s(\x60'"])--([a-z][a-z0-9-]*[a-z0-9])`).FindAllStringSubmatch(doc, -1) {
			if !flags[m[1]] {
				t.Errorf("%s mentions --%s, which is no walprobe flag", filepath.Base(f), m[1])
			}
		}
		for _, m := range regexp.MustCompile(`WALPROBE_[A-Z0-9_]*[A-Z0-9]`).FindAllString(doc, -1) {
			if !envs[m] {
				t.Errorf("%s mentions %s, which is no walprobe variable", filepath.Base(f), m)
			}
		}
		// Commands in code: `walprobe X …` spans and indented command lines.
		for _, m := range regexp.MustCompile("(?m)(?:`|^\\s{4,})walprobe ([a-z]+)\\b").FindAllStringSubmatch(doc, -1) {
			if !cmds[m[1]] {
				t.Errorf("%s mentions `walprobe %s`, which is no command", filepath.Base(f), m[1])
			}
		}
	}
}

// TestZshFishCompletion loads the zsh and fish hooks in the real shells:
// both parse, zsh registers the completion command, and fish completes
// through it.
func TestZshFishCompletion(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Fatalf("zsh not found: apt-get install -y zsh (or run .ci/install-deps)")
	}
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Fatalf("fish not found: apt-get install -y fish (or run .ci/install-deps)")
	}
	bin := buildWalprobe(t)
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_DATA_HOME="+home, "XDG_CACHE_HOME="+home, "ZDOTDIR="+home)
	script := func(sh string) string {
		out, err := exec.Command(bin, "completion", sh).Output()
		if err != nil {
			t.Fatalf("walprobe completion %s: %v", sh, err)
		}
		path := filepath.Join(home, "walprobe."+sh)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	run := func(name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
		return string(out)
	}

	zs := script("zsh")
	run(zsh, "-n", zs)
	if got := run(zsh, "-c", `source "$1"; complete -p walprobe`, "zsh", zs); !strings.Contains(got, "-C "+bin+" walprobe") {
		t.Errorf("zsh did not register walprobe's completion command: %q", got)
	}

	fs := script("fish")
	run(fish, "--no-config", "-n", fs)
	for give, want := range map[string]string{
		"walprobe se":                "setup",
		"walprobe run --log-format ": "json text",
		"walprobe check --form":      "--format",
	} {
		got := strings.Fields(run(fish, "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, fs, give))
		sort.Strings(got)
		if strings.Join(got, " ") != want {
			t.Errorf("fish completes %q to %q, want %q", give, got, want)
		}
	}
}

// TestTroubleshootingCoversErrors is the other direction: every message
// the functions that explain errors to users can produce (pgconf's Explain
// and TLS helpers, the stream's setup errors, the target preflight, the
// heartbeat error types) has an
// entry in docs/troubleshooting.md, found by a heading that is part of it.
// Generic wrappers with little fixed text ("%s: %s (SQLSTATE %s)") are
// exempt.
func TestTroubleshootingCoversErrors(t *testing.T) {
	doc := readDoc(t, "troubleshooting.md")
	var headings []string
	for _, h := range regexp.MustCompile("(?m)^### (?:`` (.+) ``|`([^`]+)`)$").FindAllStringSubmatch(doc, -1) {
		headings = append(headings, h[1]+h[2])
	}
	scope := map[string][]string{
		"../../heartbeat/pgconf/pgconf.go": {"Parse", "Explain"},
		"../../heartbeat/pgconf/tls.go":    {"parseTLSHint", "explainTLS", "explainAuthTLS"},
		"../../walstream/errors.go":        {"explain", "slotsExhausted", "walLevelError", "publicationFix"},
		"../../probe/preflight.go":         {"checkSession"},
		"../../probe/diagnose.go":          {"diagnose"},
		"../../heartbeat/errors.go":        {"Error"},
	}
	verbs := regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z%]`)
	letters := regexp.MustCompile(`[A-Za-z]`)
	checked := 0
	for file, funcs := range scope {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]bool{}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || !slices.Contains(funcs, fd.Name.Name) {
				continue
			}
			found[fd.Name.Name] = true
			var lits []*ast.BasicLit
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.CallExpr:
					if sel, ok := x.Fun.(*ast.SelectorExpr); ok && len(x.Args) > 0 {
						if id, ok := sel.X.(*ast.Ident); ok && id.Name == "fmt" && (sel.Sel.Name == "Sprintf" || sel.Sel.Name == "Errorf") {
							if l, ok := x.Args[0].(*ast.BasicLit); ok {
								lits = append(lits, l)
							}
						}
					}
				case *ast.ReturnStmt:
					for _, r := range x.Results {
						if l, ok := r.(*ast.BasicLit); ok {
							lits = append(lits, l)
						}
					}
				}
				return true
			})
			for _, l := range lits {
				s, err := strconv.Unquote(l.Value)
				if err != nil || l.Kind != token.STRING {
					continue
				}
				if len(letters.FindAllString(verbs.ReplaceAllString(s, ""), -1)) < 20 {
					continue // a wrapper: the message is in what it wraps
				}
				checked++
				if !slices.ContainsFunc(headings, func(h string) bool { return strings.Contains(s, h) }) {
					t.Errorf("%s (%s): message %q has no entry in docs/troubleshooting.md: add a heading that is a fragment of it", fset.Position(l.Pos()), fd.Name.Name, s)
				}
			}
		}
		for _, fn := range funcs {
			if !found[fn] {
				t.Errorf("%s: no func %s any more: update the scope of this test", file, fn)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d messages checked: the scope is stale", checked)
	}
}
