package otlp

import (
	"strings"
	"testing"
)

func TestRedactURLs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`Post "http://u:s3cret@collector:4318/v1/metrics": EOF`, `Post "http://REDACTED@collector:4318/v1/metrics": EOF`},
		{`Post "https://collector:4318/v1/traces": timeout`, `Post "https://collector:4318/v1/traces": timeout`},
		{`dial tcp 10.0.0.1:4317: refused`, `dial tcp 10.0.0.1:4317: refused`},
	} {
		got := RedactURLs(tc.in)
		if got != tc.want || strings.Contains(got, "s3cret") {
			t.Errorf("RedactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
