package pgconf

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestNeedsReconnectAndRejected(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code}) }
	tests := []struct {
		name          string
		give          error
		wantReconnect bool
		wantRejected  bool
	}{
		{"connection failure class 08", pg("08006"), true, false},
		{"admin shutdown", pg("57P01"), true, false},
		{"crash shutdown", pg("57P02"), true, false},
		{"cannot connect now", pg("57P03"), true, false},
		{"read-only after failover", pg("25006"), true, false},
		{"network error", errors.New("read tcp: connection reset by peer"), true, false},
		{"deadline", context.DeadlineExceeded, true, false},
		{"pg_hba", pg("28000"), false, true},
		{"wrong password", pg("28P01"), false, true},
		{"missing database", pg("3D000"), false, true},
		{"missing privilege", pg("42501"), false, true},
		{"statement timeout", pg("57014"), false, false},
		{"too many connections", pg("53300"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NeedsReconnect(tt.give); got != tt.wantReconnect {
				t.Errorf("NeedsReconnect(%v) = %v, want %v", tt.give, got, tt.wantReconnect)
			}
			if got := Rejected(tt.give); got != tt.wantRejected {
				t.Errorf("Rejected(%v) = %v, want %v", tt.give, got, tt.wantRejected)
			}
		})
	}
}

func TestNewBackoff(t *testing.T) {
	bo := NewBackoff()
	if got, want := bo.InitialInterval, 100*time.Millisecond; got != want {
		t.Errorf("InitialInterval = %v, want %v", got, want)
	}
	if got, want := bo.MaxInterval, 5*time.Second; got != want {
		t.Errorf("MaxInterval = %v, want %v", got, want)
	}
	if bo.MaxElapsedTime != 0 {
		t.Errorf("MaxElapsedTime = %v, want 0 (never give up)", bo.MaxElapsedTime)
	}
}
