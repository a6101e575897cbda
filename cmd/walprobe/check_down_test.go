package main

import (
	"strings"
	"testing"

	"github.com/walprobe/walprobe/test/cluster"
)

// TestCheckServerRejects: a target a server rejects is CRITICAL naming it
// and the reason, beside the other targets' verdicts; a primary that
// cannot be written is UNKNOWN with the reason (issue 16.3).
func TestCheckServerRejects(t *testing.T) {
	c := cluster.StartT(t, cluster.Options{Standbys: 1})
	wrong := strings.Replace(c.Standbys[0].DSN("walprobe"), "password="+c.Password, "password=wrong-canary-5e1d", 1)
	tests := []struct {
		name     string
		give     []string
		wantCode int
		wantIn   []string
	}{
		{
			name:     "target with a wrong password",
			give:     []string{"--primary", c.Primary.DSN("walprobe"), "--standby", "good=" + c.Standbys[0].DSN("walprobe"), "--standby", "bad=" + wrong},
			wantCode: statusCritical,
			wantIn:   []string{"WALPROBE CRITICAL - bad down: bad (127.0.0.1:", `password authentication failed for user "walprobe"`, "good delay"},
		},
		{
			name:     "primary in recovery",
			give:     []string{"--primary", c.Standbys[0].DSN("walprobe"), "--standby", "good=" + c.Standbys[0].DSN("walprobe")},
			wantCode: statusUnknown,
			wantIn:   []string{"WALPROBE UNKNOWN - primary (127.0.0.1:", "is in recovery"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runT(t, append([]string{"check", "--timeout", "8s"}, tt.give...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(stdout, w) {
					t.Errorf("output does not say %q: %s", w, stdout)
				}
			}
			assertNoSecret(t, "stdout", stdout, c.Password, "wrong-canary-5e1d")
			assertNoSecret(t, "stderr", stderr, c.Password, "wrong-canary-5e1d")
		})
	}
}
