package pgconf

import (
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// Seeds are also committed under testdata/fuzz/FuzzParseDSN; plain
// `go test` replays them. The random search is `make fuzz`, never CI: every
// input it finds goes into testdata/fuzz so it replays forever.
func FuzzParseDSN(f *testing.F) {
	// pgconn also reads a password from the environment and ~/.pgpass;
	// the oracle knows only the DSN.
	f.Setenv("PGPASSWORD", "")
	f.Setenv("PGPASSFILE", os.DevNull)
	f.Setenv("PGSERVICEFILE", os.DevNull)
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
		// Found by the random search: key 0 has the value "pAssword=";
		// there is no password (the old oracle read one).
		"0=pAssword= keepalives=",
		"PASSWORD=canary123 host=x port=x",
		`host=x password=can\ ary123 port=x`,
		"postgres://u@h/db?pass%77ord=canary123&port=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		pws := fuzzPasswords(dsn)
		// The oracle must read what pgconn reads: when pgconn accepts
		// the DSN, its password is one the oracle found.
		if cfg, err := pgconn.ParseConfig(dsn); err == nil && cfg.Password != "" && !slices.Contains(pws, cfg.Password) {
			t.Fatalf("oracle misreads %q: pgconn's password %q, oracle %q", dsn, cfg.Password, pws)
		}
		_, err := Parse("--primary", dsn)
		if err == nil {
			return
		}
		msg := err.Error()
		for _, pw := range pws {
			if leaks(msg, pw) {
				t.Fatalf("Parse(%q) error carries password %q: %s", dsn, pw, msg)
			}
		}
	})
}

// fuzzPasswords reads the passwords out of dsn the way pgconn does, and
// independently of Redact (which over-approximates on purpose):
//
//   - a URI (postgres:// or postgresql://): the userinfo (before the first
//     '@', if no '/' comes first) password as written and decoded the way
//     libpq decodes a URI component (leading spaces skipped, up to the next
//     space, %XX), and every ?password= value likewise;
//   - key=value pairs: libpq's grammar, which pgconn follows. A keyword is
//     a run of non-space bytes up to '=', matched case-sensitively
//     ("PASSWORD=x" is an unknown keyword, not a password); a value is
//     either single-quoted with backslash escapes or runs to the next
//     space, backslash escaping the next byte. So in `0=pAssword= x=` the
//     key 0 has the value `pAssword=`, and there is no password at all.
//
// The pairs read before a syntax error count: pgconn has read them too.
func fuzzPasswords(dsn string) []string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return uriPasswords(dsn)
	}
	var out []string
	for _, kv := range libpqPairs(dsn) {
		if kv[0] == "password" && kv[1] != "" {
			out = append(out, kv[1], kv[2])
		}
	}
	return out
}

func uriPasswords(dsn string) []string {
	var out []string
	_, rest, _ := strings.Cut(dsn, "://")
	// Like libpq: the userinfo is what precedes the first '@', if that
	// comes before any '/'.
	if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
		if _, pw, ok := strings.Cut(rest[:i], ":"); ok && pw != "" {
			out = append(out, pw, uriValue(pw))
		}
	}
	_, query, _ := strings.Cut(rest, "?")
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if uriValue(k) == "password" || k == "password" {
			out = append(out, v, uriValue(v))
		}
	}
	return out
}

// uriValue decodes a URI component as libpq and pgconn do: leading
// spaces skipped, the value ends at the next space, %XX decoded.
func uriValue(raw string) string {
	raw = strings.TrimLeft(raw, " ")
	if i := strings.IndexByte(raw, ' '); i >= 0 {
		raw = raw[:i]
	}
	if d, err := url.PathUnescape(raw); err == nil {
		return d
	}
	return raw
}

// libpqPairs tokenises a key=value connection string: each pair is
// {key, value, value as written}. It stops at the first syntax error.
func libpqPairs(s string) [][3]string {
	const space = " \t\n\r\v\f"
	var out [][3]string
	s = strings.TrimLeft(s, space)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return out
		}
		key := strings.Trim(s[:eq], space)
		if key == "" || strings.ContainsAny(key, space) {
			return out
		}
		s = strings.TrimLeft(s[eq+1:], space)
		var raw string
		if strings.HasPrefix(s, "'") {
			end := 1
			for ; end < len(s) && s[end] != '\''; end++ {
				if s[end] == '\\' {
					end++
				}
			}
			if end >= len(s) {
				return out // unterminated quote
			}
			raw, s = s[1:end], s[end+1:]
		} else {
			end := 0
			for ; end < len(s) && !strings.ContainsRune(space, rune(s[end])); end++ {
				if s[end] == '\\' {
					end++
				}
			}
			end = min(end, len(s))
			raw, s = s[:end], s[end:]
		}
		out = append(out, [3]string{key, unescapeLibpq(raw), raw})
		s = strings.TrimLeft(s, space)
	}
	return out
}

func unescapeLibpq(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

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
