package sink

import "net"

// Listener is a TCP address bound on demand, shared by the sinks that
// serve on one (the HTTP API, the HAProxy agent): Listen early, so a bad
// address is reported before anything else starts, and ask Addr for the
// port when the address had port 0.
type Listener struct {
	addr string
	ln   net.Listener
}

// NewListener returns a Listener for addr; nothing is bound yet.
func NewListener(addr string) Listener { return Listener{addr: addr} }

// Listen binds the address once; later calls do nothing.
func (l *Listener) Listen() error {
	if l.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	l.ln = ln
	return nil
}

// Addr returns the bound address (after Listen), else the configured one.
func (l *Listener) Addr() string {
	if l.ln == nil {
		return l.addr
	}
	return l.ln.Addr().String()
}

// Net returns the bound listener (nil before Listen).
func (l *Listener) Net() net.Listener { return l.ln }
