package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
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

	"github.com/walprobe/walprobe/test/launch"
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
	bin := launch.Binary(t)
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

// harnessEnvs are variables the test and benchmark harness reads, not
// walprobe: the docs may name them when they say how to run the tests.
var harnessEnvs = map[string]bool{
	"WALPROBE_ARTIFACTS": true, "WALPROBE_BENCH_PROFILE": true, "WALPROBE_PG_BINDIR": true,
	"WALPROBE_PGBOUNCER": true, "WALPROBE_OTELCOL": true, "WALPROBE_PROMETHEUS": true, "WALPROBE_TOOLS_DIR": true,
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
			if !envs[m] && !harnessEnvs[m] {
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
	bin := launch.Binary(t)
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
