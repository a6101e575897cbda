package sink

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// WriteJSON writes v as indented JSON with status code. The HTTP sinks
// (api, history) share it here so that neither imports the other.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Seconds is a duration as walprobe's JSON shows it: a number of seconds.
// The probe keeps time.Duration; every JSON output converts at its edge
// with [SecondsOf] and [SecondsPtr].
type Seconds float64

// SecondsOf returns d in seconds.
func SecondsOf(d time.Duration) Seconds { return Seconds(d.Seconds()) }

// SecondsPtr returns *d in seconds; nil (unknown) stays nil, which JSON
// shows as null, never 0.
func SecondsPtr(d *time.Duration) *Seconds {
	if d == nil {
		return nil
	}
	s := SecondsOf(*d)
	return &s
}

// MarshalJSON keeps microsecond precision and never prints exponents.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(s), 'f', 6, 64), nil
}
