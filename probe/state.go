package probe

import "fmt"

// Kind is what sort of place a target is.
type Kind string

// Target kinds.
const (
	KindStandby    Kind = "standby"
	KindSubscriber Kind = "subscriber"
	KindEndpoint   Kind = "endpoint"
	KindStream     Kind = "stream"
)

// State is a target's health as the probe sees it.
type State string

// Target states.
const (
	StateConnecting State = "connecting" // not yet measured since (re)connecting
	StateHealthy    State = "healthy"    // lag under the threshold
	StateLagging    State = "lagging"    // lag at or over the threshold, still showing beats
	StateStalled    State = "stalled"    // beats outstanding and none shown for the stall period
	StateDown       State = "down"       // cannot connect or query
	StatePromoted   State = "promoted"   // a standby left recovery: a failover happened
	// StateUnknown: the writer cannot write (primary unreachable, or only
	// the probe cut off from it) and the target had shown every acked
	// beat: nothing proves how fresh it is, and nothing says it is behind.
	StateUnknown State = "unknown"
)

// States lists every state, in the order metrics export them.
var States = []State{StateConnecting, StateHealthy, StateLagging, StateStalled, StateDown, StatePromoted, StateUnknown}

// Event is something that happened to a target.
type Event string

// Target events.
const (
	EventConnected  Event = "connected"   // a session is up again
	EventLagOK      Event = "lag_ok"      // lag evaluated under the threshold
	EventLagHigh    Event = "lag_high"    // lag evaluated at or over the threshold
	EventNoProgress Event = "no_progress" // beats outstanding, none shown for the stall period
	EventConnLost   Event = "conn_lost"   // cannot connect or a query failed on the session
	EventPromoted   Event = "promoted"    // a standby reports it is not in recovery
	EventDemoted    Event = "demoted"     // a promoted target is in recovery again
	EventLagUnknown Event = "lag_unknown" // the writer cannot write; the target had shown every acked beat
)

// transitions is the whole state machine: for each state, the events it
// accepts and where they lead. A missing pair is an invalid transition.
var transitions = map[State]map[Event]State{
	StateConnecting: {
		EventLagUnknown: StateUnknown,
		EventConnected:  StateConnecting, EventLagOK: StateHealthy, EventLagHigh: StateLagging,
		EventNoProgress: StateStalled, EventConnLost: StateDown, EventPromoted: StatePromoted,
	},
	StateHealthy: {
		EventLagUnknown: StateUnknown,
		EventConnected:  StateHealthy, EventLagOK: StateHealthy, EventLagHigh: StateLagging,
		EventNoProgress: StateStalled, EventConnLost: StateDown, EventPromoted: StatePromoted,
	},
	StateLagging: {
		EventLagUnknown: StateUnknown,
		EventConnected:  StateLagging, EventLagOK: StateHealthy, EventLagHigh: StateLagging,
		EventNoProgress: StateStalled, EventConnLost: StateDown, EventPromoted: StatePromoted,
	},
	StateStalled: {
		EventLagUnknown: StateUnknown,
		EventConnected:  StateStalled, EventLagOK: StateHealthy, EventLagHigh: StateLagging,
		EventNoProgress: StateStalled, EventConnLost: StateDown, EventPromoted: StatePromoted,
	},
	StateDown: {
		EventConnected: StateConnecting, EventConnLost: StateDown,
	},
	StateUnknown: {
		EventConnected: StateUnknown, EventLagUnknown: StateUnknown, EventLagOK: StateHealthy, EventLagHigh: StateLagging,
		EventNoProgress: StateStalled, EventConnLost: StateDown, EventPromoted: StatePromoted,
	},
	StatePromoted: {
		EventConnected: StatePromoted, EventPromoted: StatePromoted,
		EventConnLost: StateDown, EventDemoted: StateConnecting,
	},
}

// Transition returns the state that event leads to from s, or an error
// when the pair is not part of the state machine (for example a lag
// evaluation for a target that is down).
func Transition(s State, e Event) (State, error) {
	next, ok := transitions[s][e]
	if !ok {
		return s, fmt.Errorf("invalid transition: event %q in state %q", e, s)
	}
	return next, nil
}
