package probe

import "testing"

func TestTransition(t *testing.T) {
	tests := []struct {
		give    State
		event   Event
		want    State
		wantErr bool
	}{
		{StateConnecting, EventLagOK, StateHealthy, false},
		{StateConnecting, EventLagHigh, StateLagging, false},
		{StateConnecting, EventConnLost, StateDown, false},
		{StateHealthy, EventLagHigh, StateLagging, false},
		{StateLagging, EventLagOK, StateHealthy, false},
		{StateLagging, EventNoProgress, StateStalled, false},
		{StateStalled, EventLagOK, StateHealthy, false},
		{StateStalled, EventLagHigh, StateLagging, false},
		{StateHealthy, EventPromoted, StatePromoted, false},
		{StateDown, EventConnected, StateConnecting, false},
		{StatePromoted, EventDemoted, StateConnecting, false},
		{StatePromoted, EventConnLost, StateDown, false},
		// Invalid pairs: a lag evaluation needs a live session.
		{StateDown, EventLagOK, StateDown, true},
		{StateDown, EventLagHigh, StateDown, true},
		{StateDown, EventNoProgress, StateDown, true},
		{StateDown, EventPromoted, StateDown, true},
		{StatePromoted, EventLagOK, StatePromoted, true},
		{StatePromoted, EventLagHigh, StatePromoted, true},
		{StateHealthy, EventDemoted, StateHealthy, true},
		{State("bogus"), EventConnected, State("bogus"), true},
	}
	for _, tt := range tests {
		got, err := Transition(tt.give, tt.event)
		if (err != nil) != tt.wantErr {
			t.Errorf("Transition(%s, %s) error = %v, want error %v", tt.give, tt.event, err, tt.wantErr)
		}
		if got != tt.want {
			t.Errorf("Transition(%s, %s) = %s, want %s", tt.give, tt.event, got, tt.want)
		}
	}
	// Every state accepts conn_lost: a target can always go down.
	for _, s := range States {
		if _, err := Transition(s, EventConnLost); err != nil {
			t.Errorf("%s does not accept conn_lost: %v", s, err)
		}
	}
}
