package deploy

// The systemd unit and the Kubernetes manifests in deploy/ are checked
// here, beside what they deploy: each one's walprobe command line parses
// (the binary's own parser: ARGS --help exits 0 only then) and names only
// variables walprobe reads (the WALPROBE_* column of docs/config.md, which
// cmd/walprobe's TestConfigDoc generates from the flags).

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/walprobe/walprobe/test/launch"
	"gopkg.in/yaml.v3"
)

// parseArgs reports whether walprobe accepts args (its config file
// included) without running anything: `walprobe ARGS --help`.
func parseArgs(t *testing.T, args []string) error {
	t.Helper()
	cmd := launch.Command(t.Context(), t, append(slices.Clone(args), "--help")...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WALPROBE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("%v: %s", err, lines[len(lines)-1])
	}
	return nil
}

// checkEnvNames fails for a WALPROBE_* variable that is no flag's, and for
// any other variable walprobe does not read.
func checkEnvNames(t *testing.T, where string, names []string) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	envs := map[string]bool{}
	for _, m := range regexp.MustCompile("\\| `(WALPROBE_[A-Z0-9_]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		envs[m[1]] = true
	}
	if len(envs) < 10 {
		t.Fatalf("docs/config.md: found only %d WALPROBE_* variables: the pattern is stale", len(envs))
	}
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
	bin := launch.Binary(t)
	dir := t.TempDir()
	// verify checks that ExecStart's binary exists: point it at ours.
	local := strings.ReplaceAll(string(unit), "/usr/local/bin/walprobe", bin)
	path := filepath.Join(dir, "walprobe.service")
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	// verify also loads the units walprobe.service orders itself after
	// and reports on them (a distribution's pgpool2.service with an
	// obsolete setting): only lines about our unit count.
	var ours []string
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "walprobe") {
			ours = append(ours, line)
		}
	}
	if err != nil || len(ours) > 0 {
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
