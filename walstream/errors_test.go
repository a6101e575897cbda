package walstream

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestExplain(t *testing.T) {
	cfg, err := pgx.ParseConfig("host=db.example port=5433 user=probe dbname=app password=sekrit")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		give     error
		wantKind error
		wantText string
	}{
		{"no replication pg15", &pgconn.PgError{Code: "42501", Message: "must be superuser or replication role to start walsender"},
			ErrNoReplicationRole, `ALTER ROLE "probe" REPLICATION`},
		{"no replication pg16", &pgconn.PgError{Code: "42501", Message: "permission denied to start WAL sender",
			Detail: "Only roles with the REPLICATION attribute may start a WAL sender process."}, ErrNoReplicationRole, "REPLICATION"},
		{"slots exhausted", &pgconn.PgError{Code: "53400", Message: "all replication slots are in use"}, ErrSlotsExhausted, "raise max_replication_slots"},
		{"slots exhausted wrapped", fmt.Errorf("create slot x: %w", &pgconn.PgError{Code: "53400", Message: "all replication slots are in use"}),
			ErrSlotsExhausted, "max_replication_slots"},
		{"senders exhausted", &pgconn.PgError{Code: "53300", Message: "number of requested standby connections exceeds max_wal_senders (currently 10)"},
			ErrSendersExhausted, "raise max_wal_senders"},
		{"wal_level", &pgconn.PgError{Code: "55000", Message: "logical decoding requires wal_level >= logical"},
			ErrWalLevel, "set wal_level = logical in postgresql.conf and restart the primary"},
		{"publication", &pgconn.PgError{Code: "42704", Message: `publication "walprobe_heartbeat" does not exist`},
			ErrNoPublication, "CREATE PUBLICATION walprobe_heartbeat FOR TABLE walprobe.heartbeat"},
		{"other permission", &pgconn.PgError{Code: "42501", Message: "permission denied for database app"}, nil, "permission denied"},
		{"server went away", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), io.ErrUnexpectedEOF, "closed the replication connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explain("stream", cfg, tt.give)
			if tt.wantKind != nil && !errors.Is(got, tt.wantKind) {
				t.Errorf("errors.Is(%v, %v) = false", got, tt.wantKind)
			}
			var pe *pgconn.PgError
			if errors.As(tt.give, &pe) && !errors.As(got, &pe) {
				t.Errorf("%v does not unwrap to the server's error", got)
			}
			if !strings.Contains(got.Error(), tt.wantText) {
				t.Errorf("got %q, want it to contain %q", got, tt.wantText)
			}
			if !strings.Contains(got.Error(), "db.example:5433/app") {
				t.Errorf("got %q, want it to name the server", got)
			}
			if strings.Contains(got.Error(), "sekrit") {
				t.Errorf("got %q, leaks the password", got)
			}
		})
	}
}
