package pgconf

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestErrorClasses(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code}) }
	tests := []struct {
		name          string
		give          error
		wantReconnect bool
		wantRejected  bool
		wantCancelled bool
	}{
		{"connection failure class 08", pg("08006"), true, false, false},
		{"admin shutdown", pg("57P01"), true, false, false},
		{"crash shutdown", pg("57P02"), true, false, false},
		{"cannot connect now", pg("57P03"), true, false, false},
		{"read-only after failover", pg("25006"), true, false, false},
		{"network error", errors.New("read tcp: connection reset by peer"), true, false, false},
		{"deadline", context.DeadlineExceeded, true, false, false},
		{"pg_hba", pg("28000"), false, true, false},
		{"wrong password", pg("28P01"), false, true, false},
		{"missing database", pg("3D000"), false, true, false},
		{"missing privilege", pg("42501"), false, true, false},
		{"statement timeout", pg("57014"), false, false, true},
		{"too many connections", pg("53300"), false, false, false},
		{"recovery conflict", pg("40001"), false, false, true},
		{"deadlock", pg("40P01"), false, false, true},
		{"lock timeout", pg("55P03"), false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NeedsReconnect(tt.give); got != tt.wantReconnect {
				t.Errorf("NeedsReconnect(%v) = %v, want %v", tt.give, got, tt.wantReconnect)
			}
			if got := Rejected(tt.give); got != tt.wantRejected {
				t.Errorf("Rejected(%v) = %v, want %v", tt.give, got, tt.wantRejected)
			}
			if got := Cancelled(tt.give); got != tt.wantCancelled {
				t.Errorf("Cancelled(%v) = %v, want %v", tt.give, got, tt.wantCancelled)
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

func TestNextRetry(t *testing.T) {
	tests := []struct {
		name    string
		give    error
		wantMin time.Duration
		wantMax time.Duration
	}{
		{"wrong password", Explain("primary", nil, &pgconn.PgError{Code: "28P01"}), AuthRetry, AuthRetry},
		{"pg_hba", &pgconn.PgError{Code: "28000"}, AuthRetry, AuthRetry},
		{"refused", errors.New("dial tcp: connection refused"), 0, 5 * time.Second},
		{"missing database", &pgconn.PgError{Code: "3D000"}, 0, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NextRetry(NewBackoff(), tt.give)
			if got < tt.wantMin || got > tt.wantMax {
				t.Errorf("NextRetry = %v, want in [%v, %v]", got, tt.wantMin, tt.wantMax)
			}
		})
	}
}
