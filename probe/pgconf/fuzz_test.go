package pgconf

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Seeds are also committed under testdata/fuzz/FuzzParseDSN. A bounded run
// for CI:
//
//	go test -run '^$' -fuzz FuzzParseDSN -fuzztime 20s ./probe/pgconf/
func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{
		"host=x port=notaport password=canary123",
		"host=x password='canary 123' port=1x",
		`host=x password='it\'s canary' port=1x`,
		"postgres://u:canary123@h:99999999/db",
		"postgres://u:canary%31%32%33@h:notaport/db",
		"postgres://u@h/db?password=canary123&sslmode=bogus",
		"postgresql://u:canary123@h1:5432,h2:x/db?target_session_attrs=read-write",
		"host=h user=u dbname=d password=canary123 sslmode=disable",
		"password=canary123 host=/tmp port=",
		"host=h password=canary123 keepalives=2 keepalives_idle=-1",
		"postgres://u:canary123@h/db?keepalives_count=x&sslmode=verify-full&sslrootcert=/nonexistent",
		"host=h password=canary123 sslmode=verify-ca sslcert=/nonexistent",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		_, err := Parse("--primary", dsn)
		if err == nil {
			return
		}
		msg := err.Error()
		for _, pw := range fuzzPasswords(dsn) {
			if leaks(msg, pw) {
				t.Fatalf("Parse(%q) error carries password %q: %s", dsn, pw, msg)
			}
		}
	})
}

// fuzzPasswords reads the password out of dsn independently of Redact:
// password= values (quoted or not), URI userinfo as written and decoded.
func fuzzPasswords(dsn string) []string {
	var out []string
	for _, m := range fuzzKV.FindAllStringSubmatch(dsn, -1) {
		v := m[1]
		if strings.HasPrefix(v, "'") {
			v = strings.TrimSuffix(strings.TrimPrefix(v, "'"), "'")
		} else if i := strings.IndexByte(v, '&'); i >= 0 { // URI query
			v = v[:i]
		}
		out = append(out, v)
	}
	if _, rest, ok := strings.Cut(dsn, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				out = append(out, pw)
				if d, err := url.PathUnescape(pw); err == nil {
					out = append(out, d)
				}
			}
		}
	}
	return out
}

var fuzzKV = regexp.MustCompile(`(?i)password\s*=\s*('[^']*'?|[^\s]+)`)

// leaks reports whether msg shows pw. Short passwords, and ones that are
// words of the fixed message text, match by chance and prove nothing.
func leaks(msg, pw string) bool {
	if len(pw) < 6 || strings.Contains(fuzzVocab, pw) {
		return false
	}
	return strings.Contains(msg, pw)
}

// fuzzVocab is text any Parse error may carry whatever the password.
const fuzzVocab = "--primary: invalid DSN (): use a libpq URI (postgres://user@host:5432/db) or key=value pairs (host=... port=... dbname=...)" +
	" xxxxx invalid port cannot parse failed to parse as keyword/value invalid keyword/value unterminated quoted string" +
	" invalid sslmode sslmode is invalid invalid target_session_attrs invalid connect_timeout invalid dsn"
