package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// depsDryRun runs .ci/install-deps in dry-run mode with every check
// forced to missing and returns the packages it would install.
func depsDryRun(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"../../.ci/install-deps"}, args...)...)
	cmd.Env = append(os.Environ(), "WALPROBE_DEPS_DRY_RUN=1", "WALPROBE_DEPS_ASSUME_MISSING=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash .ci/install-deps %s (dry run): %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

// TestDemoInstallsOnlyWhatItNeeds keeps `make demo` from installing the
// test suite's tools (Chromium, HAProxy, shells, systemd, promtool) on an
// operator's machine: only the PostgreSQL 15 server and pgbouncer.
func TestDemoInstallsOnlyWhatItNeeds(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	demo := regexp.MustCompile(`(?m)^demo:\n((?:\t.*\n)+)`).FindSubmatch(mk)
	if demo == nil {
		t.Fatal("Makefile has no demo target")
	}
	if !strings.Contains(string(demo[1]), "bash .ci/install-deps demo\n") {
		t.Fatalf("Makefile's demo target must install with `bash .ci/install-deps demo`; it runs:\n%s", demo[1])
	}

	tests := []struct {
		give []string
		want []string
	}{
		{give: []string{"demo"}, want: []string{"pgbouncer", "postgresql-15"}},
	}
	for _, tt := range tests {
		got := depsDryRun(t, tt.give...)
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("install-deps %v would install %v, want exactly %v", tt.give, got, tt.want)
		}
	}

	// The full mode still installs what the tests need, so the dry run
	// above is not passing by listing nothing.
	all := depsDryRun(t)
	for _, pkg := range []string{"postgresql-15", "pgbouncer", "haproxy", "pgpool2", "chromium", "zsh", "fish", "systemd", "prometheus"} {
		if !slices.Contains(all, pkg) {
			t.Errorf("install-deps (full) would not install %s; it lists %v", pkg, all)
		}
	}
}
