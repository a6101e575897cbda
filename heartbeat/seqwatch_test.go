package heartbeat

import (
	"errors"
	"fmt"
	"testing"
)

// TestSeqWatch drives the shared-row detection with the seqs a writer's
// upserts would return. A step is a seq acked on the current connection,
// or "reconnect" / "fail" (a beat whose outcome is unknown); each
// change is written "begin FROM->TO" or "end" at the step that caused it.
func TestSeqWatch(t *testing.T) {
	clean := func(from, n int64) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprint(from+i))
		}
		return out
	}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name string
		give []string
		want map[int]string // step index → change
	}{
		{
			name: "in order",
			give: clean(1, 50),
		},
		{
			name: "first beat after start may jump",
			give: clean(41, 5),
		},
		{
			name: "jump on an unbroken connection",
			give: []string{"41", "57", "58"},
			want: map[int]string{1: "begin 41->57"},
		},
		{
			name: "one warning per episode",
			give: []string{"41", "43", "45", "47", "48", "50"},
			want: map[int]string{1: "begin 41->43"},
		},
		{
			name: "reconnect then jump is not flagged",
			give: []string{"41", "42", "reconnect", "900", "901"},
		},
		{
			name: "failed beat then jump is not flagged",
			give: []string{"41", "42", "fail", "44", "45"},
		},
		{
			name: "jump after a reconnect's first beat is flagged",
			give: []string{"41", "reconnect", "900", "902"},
			want: map[int]string{3: "begin 900->902"},
		},
		{
			name: "clears after conflictQuiet clean beats",
			give: cat([]string{"41", "43"}, clean(44, conflictQuiet)),
			want: map[int]string{1: "begin 41->43", 1 + conflictQuiet: "end"},
		},
		{
			name: "a jump restarts the clean count",
			give: cat([]string{"41", "43"}, clean(44, conflictQuiet-1), []string{"60"}, clean(61, conflictQuiet)),
			want: map[int]string{1: "begin 41->43", 2 + conflictQuiet + conflictQuiet - 1: "end"},
		},
		{
			name: "unchecked beats do not count as clean",
			give: cat([]string{"41", "43"}, clean(44, conflictQuiet-1), []string{"reconnect", "200"}, clean(201, 1)),
			want: map[int]string{1: "begin 41->43", 2 + conflictQuiet + 1: "end"},
		},
		{
			name: "a new episode after one ended",
			give: cat([]string{"41", "43"}, clean(44, conflictQuiet), []string{"60"}),
			want: map[int]string{1: "begin 41->43", 1 + conflictQuiet: "end", 2 + conflictQuiet: fmt.Sprintf("begin %d->60", 43+conflictQuiet)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := seqWatch{probeID: "p1", primary: "127.0.0.1:5432/app"}
			got := map[int]string{}
			for i, step := range tt.give {
				switch step {
				case "reconnect", "fail":
					w.forget()
					continue
				}
				var seq int64
				if _, err := fmt.Sscan(step, &seq); err != nil {
					t.Fatal(err)
				}
				changed, err := w.acked(seq)
				switch {
				case !changed && err != nil:
					t.Fatalf("step %d: error %v without a change", i, err)
				case !changed:
				case err == nil:
					got[i] = "end"
				default:
					var ce *ProbeIDConflictError
					if !errors.As(err, &ce) || !errors.Is(err, ErrProbeIDConflict) {
						t.Fatalf("step %d: %T %v is not a *ProbeIDConflictError wrapping ErrProbeIDConflict", i, err, err)
					}
					got[i] = fmt.Sprintf("begin %d->%d", ce.From, ce.To)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("changes = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestProbeIDConflictMessage: the message names the probe id, the server,
// the jump and the flag to change, and unwraps to the sentinel.
func TestProbeIDConflictMessage(t *testing.T) {
	err := error(&ProbeIDConflictError{ProbeID: "eu-1", Primary: "db1:5432/app", From: 41, To: 57})
	got := err.Error()
	want := `another walprobe is writing the heartbeat row of probe id "eu-1" on db1:5432/app (seq jumped from 41 to 57): give each probe its own --probe-id`
	if got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(fmt.Errorf("beat: %w", err), ErrProbeIDConflict) {
		t.Error("errors.Is(wrapped, ErrProbeIDConflict) = false")
	}
}
