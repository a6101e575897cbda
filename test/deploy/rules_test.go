package deploy

import (
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	rulesFile     = "../../deploy/prometheus/walprobe.rules.yml"
	rulesTestFile = "../../deploy/prometheus/walprobe.rules.test.yml"
	k8sRuleFile   = "../../deploy/k8s/prometheusrule.yaml"
)

// promtool returns the path of promtool, failing the test with the
// install command when it is missing: the rules are part of what we ship.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found in PATH (Debian: /usr/bin/promtool): install it with `apt-get install -y prometheus` or `bash .ci/install-deps`")
	}
	return path
}

func TestPromtoolCheckRules(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	// promtool resolves rule_files relative to the test file.
	out, err := exec.Command(promtool(t), "test", "rules", rulesTestFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s", rulesTestFile, err, out)
	}
}

// readYAML decodes one YAML file into a generic value.
func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func TestK8sPrometheusRuleMatchesRules(t *testing.T) {
	rules := readYAML(t, rulesFile)
	pr := readYAML(t, k8sRuleFile)
	if pr["kind"] != "PrometheusRule" || pr["apiVersion"] != "monitoring.coreos.com/v1" {
		t.Fatalf("%s: want apiVersion monitoring.coreos.com/v1, kind PrometheusRule; got %v, %v", k8sRuleFile, pr["apiVersion"], pr["kind"])
	}
	spec, _ := pr["spec"].(map[string]any)
	if got, want := spec["groups"], rules["groups"]; want == nil || !reflect.DeepEqual(got, want) {
		t.Errorf("%s: spec.groups differ from the groups of %s: copy them over unchanged", k8sRuleFile, rulesFile)
	}
	k, err := os.ReadFile("../../deploy/k8s/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(k), "- prometheusrule.yaml") {
		t.Error("deploy/k8s/kustomization.yaml does not list prometheusrule.yaml")
	}
}

// TestAlertsHaveRunbooks checks every alert's annotations: a summary, a
// runbook sentence that names a page in docs/ (or README.md) of this
// repository and no external link, and a severity label.
func TestAlertsHaveRunbooks(t *testing.T) {
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			rb := r.Annotations["runbook"]
			switch {
			case rb == "":
				t.Errorf("%s: no runbook annotation", r.Alert)
			case strings.Contains(rb, "://"):
				t.Errorf("%s: runbook links outside the repository: %q", r.Alert, rb)
			case !strings.Contains(rb, "docs/") && !strings.Contains(rb, "README.md"):
				t.Errorf("%s: runbook names no page in docs/: %q", r.Alert, rb)
			}
			for _, page := range docPages(rb) {
				if _, err := os.Stat("../../" + page); err != nil {
					t.Errorf("%s: runbook names %s: %v", r.Alert, page, err)
				}
			}
			if r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("%s: want a summary annotation and a severity label", r.Alert)
			}
		}
	}
	if alerts == 0 {
		t.Fatalf("%s: no alerts", rulesFile)
	}
}

// docPages returns the docs/*.md and README.md paths a runbook names.
func docPages(s string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(" (),;", r) }) {
		if strings.HasSuffix(w, ".md") && (strings.HasPrefix(w, "docs/") || w == "README.md") {
			out = append(out, w)
		}
	}
	return out
}
