package walstream

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/heartbeat/pgconf"
)

// Defaults for zero Config fields.
const (
	DefaultStatusInterval = 10 * time.Second
	DefaultSlotPrefix     = "walprobe_"
)

// maxSlotName is PostgreSQL's NAMEDATALEN - 1.
const maxSlotName = 63

// suffixLen is the random part of a slot name, in hex digits. Two probes
// with the same probe id (a misconfiguration, or an old walsender not yet
// gone after a reconnect) still get distinct slots.
const suffixLen = 8

// Target is what a Stream reports to: *probe.Target implements it. It is
// declared here so that walstream does not import probe (the probe sits
// above the stream: dependencies point down).
type Target interface {
	// Name is the target's configured name, for logs and errors.
	Name() string
	// Connected reports that the replication connection is up.
	Connected()
	// Down reports that the stream failed; err is actionable.
	Down(err error)
	// Streamed reports beat seq read off the stream: it reached the
	// probe in (after, s.Received] (after == s.Received: exact), with its
	// trip split into stages. The target times the beat when the writer's
	// ack lands if the stream saw it first; the stream never waits.
	Streamed(seq int64, after time.Time, s heartbeat.StreamStages)
}

// Config configures a Stream.
type Config struct {
	// Conn is the primary as parsed by pgconf.Parse. The role needs the
	// REPLICATION attribute, not superuser.
	Conn *pgx.ConnConfig
	// ProbeID selects the heartbeat row: other probes' rows are ignored.
	ProbeID string
	// Publication is the pgoutput publication; default heartbeat.Publication.
	Publication string
	// StatusInterval is the longest time between standby status updates;
	// default 10s. Updates are also sent right after every beat.
	StatusInterval time.Duration
	// SlotPrefix starts every slot name; default "walprobe_". Lowercase
	// letters, digits and underscores only.
	SlotPrefix string
}

// Validate fills defaults and reports every bad field at once.
func (c *Config) Validate() error {
	if c.Publication == "" {
		c.Publication = heartbeat.Publication
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.SlotPrefix == "" {
		c.SlotPrefix = DefaultSlotPrefix
	}
	var errs []error
	if c.Conn == nil {
		errs = append(errs, errors.New("walstream: primary DSN is required"))
	}
	if c.ProbeID == "" {
		errs = append(errs, errors.New("walstream: probe_id is required"))
	}
	if c.StatusInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("walstream: status interval %s is below 100ms", c.StatusInterval))
	}
	if c.StatusInterval > time.Minute {
		// wal_sender_timeout defaults to 60s: a quieter standby is cut off.
		errs = append(errs, fmt.Errorf("walstream: status interval %s exceeds 1m, the default wal_sender_timeout", c.StatusInterval))
	}
	if sanitize(c.SlotPrefix) != c.SlotPrefix {
		errs = append(errs, fmt.Errorf("walstream: slot prefix %q may hold only lowercase letters, digits and underscores", c.SlotPrefix))
	}
	if len(c.SlotPrefix) > maxSlotName-suffixLen-2 {
		errs = append(errs, fmt.Errorf("walstream: slot prefix %q is longer than %d bytes", c.SlotPrefix, maxSlotName-suffixLen-2))
	}
	return errors.Join(errs...)
}

// slotName returns prefix + sanitized probe id + "_" + random suffix,
// truncating the probe id so the whole fits in 63 bytes.
func slotName(prefix, probeID string) string {
	var b [suffixLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	id := sanitize(probeID)
	if room := maxSlotName - len(prefix) - 1 - suffixLen; len(id) > room {
		id = id[:max(room, 0)]
	}
	return prefix + id + "_" + hex.EncodeToString(b[:])
}

// sanitize lowercases s and replaces every byte outside [a-z0-9_] with '_':
// slot names allow nothing else.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '_'
	}, s)
}

func addr(c Config) string { return pgconf.Addr(c.Conn) }
