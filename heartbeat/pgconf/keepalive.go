package pgconf

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

// keepAliveParams are libpq connection parameters that pgx does not know:
// it would send them to the server as run-time settings, which the server
// refuses ("unrecognized configuration parameter"). keepAlive takes them
// out of the runtime parameters and into the dialer.
var keepAliveParams = []string{"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"}

// keepAlive reads libpq's keepalive parameters from rp, deletes them from
// it, and returns the socket settings: walprobe's defaults for parameters
// not given, libpq's meaning for those given (keepalives=0 turns probes
// off; 0 for the others leaves the system default).
func keepAlive(rp map[string]string) (net.KeepAliveConfig, error) {
	ka := net.KeepAliveConfig{
		Enable:   true,
		Idle:     DefaultKeepAliveIdle,
		Interval: DefaultKeepAliveInterval,
		Count:    DefaultKeepAliveCount,
	}
	vals := make(map[string]int, len(keepAliveParams))
	for _, k := range keepAliveParams {
		v, ok := rp[k]
		if !ok {
			continue
		}
		delete(rp, k)
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 0:
			return ka, fmt.Errorf("%s=%q: want a whole number ≥ 0 (seconds for keepalives_idle and keepalives_interval)", k, v)
		case k == "keepalives" && n > 1:
			return ka, fmt.Errorf("keepalives=%q: want 1 (on, the default) or 0 (off)", v)
		}
		vals[k] = n
	}
	if v, ok := vals["keepalives"]; ok && v == 0 {
		return net.KeepAliveConfig{Enable: false, Idle: -1, Interval: -1, Count: -1}, nil
	}
	// libpq: 0 means the system default; net.KeepAliveConfig: a negative
	// value leaves the socket option as the system set it.
	seconds := func(k string, d *time.Duration) {
		if v, ok := vals[k]; ok {
			*d = time.Duration(v) * time.Second
			if v == 0 {
				*d = -1
			}
		}
	}
	seconds("keepalives_idle", &ka.Idle)
	seconds("keepalives_interval", &ka.Interval)
	if v, ok := vals["keepalives_count"]; ok {
		ka.Count = v
		if v == 0 {
			ka.Count = -1
		}
	}
	return ka, nil
}

// Dialer returns the dialer every probe connection uses: the connect
// timeout and the keepalive settings ka.
func Dialer(timeout time.Duration, ka net.KeepAliveConfig) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAliveConfig: ka}
	if !ka.Enable {
		d.KeepAlive = -1 // with Enable false, this is what turns probes off
	}
	return d
}
