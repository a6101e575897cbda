package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/walprobe/walprobe"

// product is every package outside test/: what `walprobe` may link.
const product = "!test/*"

// rules is where dependencies may point, written down once. A package's
// imports from this module must each match one of may; the first row whose
// pkg matches the importer applies. Patterns are paths relative to the
// module: "x" is the package x, "x/*" every package below x, "!test/*"
// every package not under test/. Only non-test files count: a package's
// _test.go files may import what they need (test/cluster, probe).
//
// heartbeat is the bottom of the tree and heartbeat/pgconf, the connection
// policy, its leaf; probe reads heartbeat; walstream reports to an
// interface of its own that *probe.Target satisfies; sinks read the probe
// and share only the leaf package sink and sink/alert; cmd wires
// everything; nothing in the product imports test/.
//
// sink/alert is the one sink other sinks may import: alerts have sources
// (its own rules, sink/slo) and a transport (sink/webhook) that must share
// one Alert type without importing each other. It imports no other sink,
// so the sinks still form no chain.
var rules = []rule{
	{"heartbeat/pgconf", nil},
	{"heartbeat", []string{"heartbeat/pgconf"}},
	{"probe", []string{"heartbeat", "heartbeat/pgconf"}},
	{"walstream", []string{"heartbeat", "heartbeat/pgconf"}},
	{"sink", nil},
	{"sink/alert", []string{"probe", "heartbeat", "heartbeat/pgconf", "sink"}},
	{"sink/*", []string{"probe", "heartbeat", "heartbeat/pgconf", "sink", "sink/alert"}},
	{"cmd/*", []string{product}},
	{"test/*", []string{"*"}},
}

type rule struct {
	pkg string   // the importer
	may []string // what it may import from the module
}

// match reports whether the module-relative path rel matches pattern.
func match(pattern, rel string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "!"):
		return !match(pattern[1:], rel)
	case strings.HasSuffix(pattern, "/*"):
		return strings.HasPrefix(rel, strings.TrimSuffix(pattern, "*"))
	}
	return pattern == rel
}

// violations returns one line per import in graph (importer → imports,
// full import paths) that runs the wrong way, naming the rule it breaks.
// It is pure so that TestViolations can feed it a bad graph.
func violations(graph map[string][]string) []string {
	var out []string
	for _, pkg := range slices.Sorted(maps.Keys(graph)) {
		from, ok := relative(pkg)
		if !ok {
			continue
		}
		i := slices.IndexFunc(rules, func(r rule) bool { return match(r.pkg, from) })
		if i < 0 {
			out = append(out, fmt.Sprintf("%s: no rule says what it may import: add a row to rules in test/lint/imports_test.go", from))
			continue
		}
		r := rules[i]
		for _, imp := range graph[pkg] {
			to, ok := relative(imp)
			if !ok || to == from {
				continue
			}
			if !slices.ContainsFunc(r.may, func(p string) bool { return match(p, to) }) {
				may := "nothing in the module"
				if len(r.may) > 0 {
					may = strings.ReplaceAll(strings.Join(r.may, ", "), product, "the product (not test/)")
				}
				out = append(out, fmt.Sprintf("%s imports %s: rule %q may import only %s", from, to, r.pkg, may))
			}
		}
	}
	return out
}

// relative returns path inside the module ("." for the root).
func relative(path string) (string, bool) {
	if path == module {
		return ".", true
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	return rel, ok
}

// TestImportsPointDown checks every package of the module against rules.
func TestImportsPointDown(t *testing.T) {
	graph := listImports(t)
	for _, want := range []string{"heartbeat/pgconf", "walstream", "cmd/walprobe", "sink/history"} {
		if _, ok := graph[module+"/"+want]; !ok {
			t.Fatalf("go list did not report %s: is the module root right?", want)
		}
	}
	for _, v := range violations(graph) {
		t.Error(v)
	}
}

// TestViolations makes sure the checker can fail: every edge of a graph
// that runs the wrong way is reported with its rule, and a right one is not.
func TestViolations(t *testing.T) {
	p := func(rel string) string { return module + "/" + rel }
	tests := []struct {
		name string
		give map[string][]string
		want []string // substrings, one violation each, in order
	}{
		{
			name: "right way",
			give: map[string][]string{
				p("heartbeat/pgconf"): {"fmt", "github.com/jackc/pgx/v5"},
				p("heartbeat"):        {p("heartbeat/pgconf")},
				p("walstream"):        {p("heartbeat"), p("heartbeat/pgconf")},
				p("sink/history"):     {p("probe"), p("sink")},
				p("sink/webhook"):     {p("sink/alert")},
				p("cmd/walprobe"):     {p("cmd/localcluster"), p("walstream"), p("sink/api")},
				p("test/e2e"):         {p("test/cluster"), p("probe")},
			},
		},
		{
			name: "wrong way",
			give: map[string][]string{
				p("heartbeat/pgconf"): {p("heartbeat")},
				p("heartbeat"):        {p("probe/pgconf")},
				p("walstream"):        {p("probe")},
				p("sink/history"):     {p("sink/api")},
				p("sink/alert"):       {p("sink/slo")},
				p("cmd/walprobe"):     {p("test/cluster")},
				p("newpkg"):           {"fmt"},
			},
			want: []string{
				`cmd/walprobe imports test/cluster: rule "cmd/*"`,
				`heartbeat imports probe/pgconf: rule "heartbeat" may import only heartbeat/pgconf`,
				`heartbeat/pgconf imports heartbeat: rule "heartbeat/pgconf" may import only nothing in the module`,
				"newpkg: no rule",
				`sink/alert imports sink/slo: rule "sink/alert"`,
				`sink/history imports sink/api: rule "sink/*"`,
				`walstream imports probe: rule "walstream"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := violations(tt.give)
			if len(got) != len(tt.want) {
				t.Fatalf("violations = %q, want %d matching %q", got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("violation %d = %q, want it to contain %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// listImports runs go list from the module root and returns each
// package's non-test imports.
func listImports(t *testing.T) map[string][]string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v\n%s", cmd.Dir, err, stderr.String())
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var pkg struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&pkg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		graph[pkg.ImportPath] = pkg.Imports
	}
	return graph
}
