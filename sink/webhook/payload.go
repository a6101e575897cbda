package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/walprobe/walprobe/sink/alert"
)

// PayloadVersion is the version of the walprobe body.
const PayloadVersion = "1"

// Payload is the walprobe body.
type Payload struct {
	Version   string     `json:"version"`
	Status    string     `json:"status"` // firing or resolved
	Alert     string     `json:"alert"`
	Target    string     `json:"target"`
	Severity  string     `json:"severity"`
	Summary   string     `json:"summary"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
}

// amAlert is one element of Alertmanager's POST /api/v2/alerts body.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      *time.Time        `json:"endsAt,omitempty"`
}

func body(f Format, a alert.Alert) ([]byte, error) {
	var ended *time.Time
	if !a.Firing {
		t := a.EndedAt.UTC()
		ended = &t
	}
	var v any
	switch f {
	case FormatAlertmanager:
		v = []amAlert{{
			Labels:      map[string]string{"alertname": a.Name, "target": a.Target, "severity": a.Severity, "source": "walprobe"},
			Annotations: map[string]string{"summary": a.Summary},
			StartsAt:    a.StartedAt.UTC(),
			EndsAt:      ended,
		}}
	case FormatSlack:
		v = map[string]string{"text": fmt.Sprintf("[%s] %s %s (%s): %s", strings.ToUpper(a.Status()), a.Name, a.Target, a.Severity, a.Summary)}
	default:
		v = Payload{
			Version: PayloadVersion, Status: a.Status(), Alert: a.Name, Target: a.Target,
			Severity: a.Severity, Summary: a.Summary, StartedAt: a.StartedAt.UTC(), EndedAt: ended,
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s alert %s: %w", f, a.Name, err)
	}
	return b, nil
}

// SignatureHeader carries the body's HMAC.
const SignatureHeader = "X-Walprobe-Signature"

// Sign returns the SignatureHeader value for body: sha256=<hex HMAC-SHA256>.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is body's signature under secret, in
// constant time; receivers can use it.
func Verify(secret, body []byte, sig string) bool {
	return hmac.Equal([]byte(sig), []byte(Sign(secret, body)))
}
