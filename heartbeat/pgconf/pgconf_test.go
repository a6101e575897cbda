package pgconf

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
		give string // text that may echo the password
		// gone must not survive Redact; want must.
		gone []string
		want string
	}{
		{
			name: "key=value",
			dsn:  "host=h password=s3cret dbname=app",
			give: "cannot parse password=s3cret at offset 7",
			gone: []string{"s3cret"},
			want: "cannot parse password=xxxxx at offset 7",
		},
		{
			name: "key=value with spaces round =",
			dsn:  "host=h password = s3cret",
			give: "bad s3cret",
			gone: []string{"s3cret"},
			want: "bad xxxxx",
		},
		{
			name: "key=value upper case key",
			dsn:  "host=h PASSWORD=s3cret",
			give: "bad s3cret",
			gone: []string{"s3cret"},
			want: "bad xxxxx",
		},
		{
			name: "quoted password with spaces",
			dsn:  "host=h password='my s3cret pw' dbname=app",
			give: "invalid value 'my s3cret pw' here",
			gone: []string{"my s3cret pw"},
			want: "invalid value 'xxxxx' here",
		},
		{
			name: "quoted password with an escaped quote",
			dsn:  `host=h password='it\'s s3cret' dbname=app`,
			give: `echo it\'s s3cret`,
			gone: []string{`it\'s s3cret`},
			want: "echo xxxxx",
		},
		{
			name: "URI",
			dsn:  "postgres://u:s3cret@h:5432/db",
			give: "dial postgres://u:s3cret@h:5432/db failed",
			gone: []string{"s3cret"},
			want: "dial postgres://u:xxxxx@h:5432/db failed",
		},
		{
			name: "URI with a percent-encoded password",
			dsn:  "postgresql://u:p%40ss%20w0rd@h/db",
			give: "raw p%40ss%20w0rd decoded p@ss w0rd",
			gone: []string{"p%40ss%20w0rd", "p@ss w0rd"},
			want: "raw xxxxx decoded xxxxx",
		},
		{
			name: "URI with query-escaped password echoed",
			dsn:  "postgres://u:a%20b@h/db",
			give: "echo a+b",
			gone: []string{"a+b"},
			want: "echo xxxxx",
		},
		{
			name: "URI password in the query string",
			dsn:  "postgres://u@h/db?password=s3cret&sslmode=disable",
			give: "bad s3cret",
			gone: []string{"s3cret"},
			want: "bad xxxxx",
		},
		{
			name: "unparseable URI",
			dsn:  "postgres://u:s3cret@h:notaport/db",
			give: "invalid port in postgres://u:s3cret@h:notaport/db",
			gone: []string{"s3cret"},
			want: "invalid port in postgres://u:xxxxx@h:notaport/db",
		},
		{
			name: "no password",
			dsn:  "host=h dbname=app",
			give: "host=h dbname=app",
			want: "host=h dbname=app",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Redact(tt.dsn, tt.give)
			if got != tt.want {
				t.Errorf("Redact(%q, %q) = %q, want %q", tt.dsn, tt.give, got, tt.want)
			}
			for _, g := range tt.gone {
				if strings.Contains(got, g) {
					t.Errorf("Redact left %q in %q", g, got)
				}
			}
		})
	}
}

func TestParseErrorHasNoPassword(t *testing.T) {
	tests := []struct {
		name string
		give string
		pw   string
	}{
		{"key=value bad port", "host=x port=notaport password=canary123", "canary123"},
		{"key=value quoted", "host=x port=notaport password='canary 123'", "canary 123"},
		{"URI port out of range", "postgres://u:canary123@h:99999999/db", "canary123"},
		{"URI percent-encoded", "postgres://u:canary%31%32%33@h:notaport/db", "canary123"},
		{"URI bad sslmode", "postgres://u:canary123@h/db?sslmode=bogus", "canary123"},
		{"key=value unterminated quote", "host=x password='canary123", "canary123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("--primary", tt.give)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want an error", tt.give)
			}
			got := err.Error()
			if strings.Contains(got, tt.pw) {
				t.Errorf("error carries the password %q: %s", tt.pw, got)
			}
			if !strings.HasPrefix(got, "--primary: invalid DSN") {
				t.Errorf("error does not name the flag: %s", got)
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse("t", "host=h user=u dbname=d password=p statement_timeout=250")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.DefaultQueryExecMode, pgx.QueryExecModeSimpleProtocol; got != want {
		t.Errorf("exec mode %v, want %v", got, want)
	}
	if got, want := cfg.ConnectTimeout, DefaultConnTimeout; got != want {
		t.Errorf("connect timeout %v, want %v", got, want)
	}
	for k, want := range map[string]string{
		"application_name":                    ApplicationNamePref,
		"statement_timeout":                   "250", // the DSN wins
		"lock_timeout":                        fmt.Sprint(LockTimeout.Milliseconds()),
		"idle_in_transaction_session_timeout": fmt.Sprint(IdleInTxTimeout.Milliseconds()),
	} {
		if got := cfg.RuntimeParams[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got, want := Addr(cfg), "h:5432/d"; got != want {
		t.Errorf("Addr = %q, want %q", got, want)
	}
}

func TestExplainPgError(t *testing.T) {
	cfg, err := Parse("replica1", "host=db.example port=6432 user=walprobe dbname=app password=canary123")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		code string
		msg  string
		want []string
	}{
		{"28P01", `password authentication failed for user "walprobe"`,
			[]string{`replica1 (db.example:6432/app): password authentication failed for user "walprobe"`, "check the password in the DSN, PGPASSWORD or ~/.pgpass"}},
		{"28000", `no pg_hba.conf entry for host "10.0.0.9", user "walprobe", database "app"`,
			[]string{"server rejected the connection", "no pg_hba.conf entry", `add a pg_hba.conf entry for user "walprobe"`}},
		{"3D000", `database "app" does not exist`,
			[]string{`replica1 (db.example:6432/app): database "app" does not exist: fix dbname in the DSN`}},
		{"42501", "permission denied for table heartbeat",
			[]string{"permission denied (permission denied for table heartbeat)", "walprobe setup --print-sql"}},
		{"53300", "sorry, too many clients already",
			[]string{"too many connections", "raise max_connections"}},
		{"57P03", "the database system is starting up",
			[]string{"server is starting up or shutting down"}},
		{"XX000", "something odd",
			[]string{"replica1 (db.example:6432/app): something odd (SQLSTATE XX000)"}},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			pgErr := &pgconn.PgError{Severity: "FATAL", Code: tt.code, Message: tt.msg}
			// pgx wraps server errors in a ConnectError; Explain must see
			// through the wrapping.
			err := Explain("replica1", cfg, fmt.Errorf("connect: %w", pgErr))
			got := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Explain = %q, does not say %q", got, w)
				}
			}
			if strings.Contains(got, "canary123") || strings.Contains(got, "\n") {
				t.Errorf("Explain = %q: want one password-free line", got)
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe != pgErr {
				t.Errorf("errors.As does not find the PgError in %v", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Target != "replica1" {
				t.Errorf("errors.As(*Error) = %v, target %q", e, e.Target)
			}
		})
	}
}

func TestExplainOther(t *testing.T) {
	cfg, err := Parse("p", "host=h user=u dbname=d password=canary123")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give error
		want string
	}{
		{"nil config", errors.New("boom"), "x: boom"},
		{"refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), "connection refused: is the server running"},
		{"timeout", errors.New("dial tcp: i/o timeout"), "timed out: check host, port and firewalls"},
		{"echoed password", errors.New("server said canary123 is wrong"), "server said xxxxx is wrong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			name := "p"
			if tt.name == "nil config" {
				c, name = nil, "x"
			}
			err := Explain(name, c, tt.give)
			if got := err.Error(); !strings.Contains(got, tt.want) || strings.Contains(got, "canary123") {
				t.Errorf("Explain = %q, want it to contain %q and no password", got, tt.want)
			}
			if !errors.Is(err, tt.give) {
				t.Errorf("errors.Is(Explain(err), err) = false")
			}
		})
	}
	if Explain("p", cfg, nil) != nil {
		t.Error("Explain(nil) != nil")
	}
}
