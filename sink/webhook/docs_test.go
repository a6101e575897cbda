package webhook

// docs/alerts.md is checked here, beside the code that sends what it
// documents: headers, every payload format's fields, the alert names.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walprobe/walprobe/sink/alert"
)

const docsDir = "../../docs"

// readDoc reads docs/NAME.
func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(docsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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
	bodies := map[Format][2]req{}
	for _, f := range []Format{FormatWalprobe, FormatAlertmanager, FormatSlack} {
		n, err := New(Config{URL: srv.URL + "/hook", Secret: secret, Format: f}, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
			sig := r.header.Get(SignatureHeader)
			if !Verify([]byte(secret), r.body, sig) {
				t.Errorf("%s: %s %q does not verify", f, SignatureHeader, sig)
			}
			for _, h := range docTable(t, doc, "## Headers") {
				if r.header.Get(h) == "" {
					t.Errorf("%s: documented header %s not sent", f, h)
				}
				if v := r.header.Get(h); h != SignatureHeader && !strings.Contains(doc, "| `"+h+"` | `"+v+"` |") {
					t.Errorf("docs/alerts.md: header %s is sent as %q", h, v)
				}
			}
		}
	}

	// walprobe format: the documented fields, exactly; ended_at only when resolved.
	fields := docTable(t, doc, "## `--webhook-format walprobe` (default), version "+PayloadVersion)
	for i, r := range bodies[FormatWalprobe] {
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
		if v["version"] != PayloadVersion || !strings.Contains(doc, "payload version, `\""+PayloadVersion+"\"`") {
			t.Errorf("version: body %v, code %s: update docs/alerts.md", v["version"], PayloadVersion)
		}
	}
	// Alertmanager: the documented fields, endsAt only when resolved.
	fields = docTable(t, doc, "## `--webhook-format alertmanager`")
	for i, r := range bodies[FormatAlertmanager] {
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
	for i, r := range bodies[FormatSlack] {
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
