package inproc

import (
	"slices"
	"sync"
	"time"

	"github.com/walprobe/walprobe/heartbeat"
	"github.com/walprobe/walprobe/probe"
)

// Recorder is a probe.Observer that keeps what the probe reports: every
// beat, visibility, transition and stream split. Its methods return
// copies and are safe for concurrent use.
type Recorder struct {
	probe.NopObserver

	mu     sync.Mutex // guards the fields below
	beats  []heartbeat.Beat
	missed int
	vis    map[string][]probe.Visibility
	trs    []probe.TransitionEvent
	stages []probe.StreamStages
}

// Beat implements probe.Observer.
func (r *Recorder) Beat(b heartbeat.Beat) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.beats = append(r.beats, b)
}

// Missed implements probe.Observer.
func (r *Recorder) Missed(_ time.Time, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.missed++
}

// Visible implements probe.Observer.
func (r *Recorder) Visible(v probe.Visibility) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.vis == nil {
		r.vis = map[string][]probe.Visibility{}
	}
	r.vis[v.Target] = append(r.vis[v.Target], v)
}

// Transition implements probe.Observer.
func (r *Recorder) Transition(e probe.TransitionEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trs = append(r.trs, e)
}

// Stages implements probe.Observer.
func (r *Recorder) Stages(s probe.StreamStages) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stages = append(r.stages, s)
}

// Beats returns every beat written so far.
func (r *Recorder) Beats() []heartbeat.Beat {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.beats)
}

// MissedCount returns how many intervals had no beat.
func (r *Recorder) MissedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.missed
}

// VisibleOn returns every beat timed on target so far.
func (r *Recorder) VisibleOn(target string) []probe.Visibility {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.vis[target])
}

// Transitions returns every state change so far.
func (r *Recorder) Transitions() []probe.TransitionEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.trs)
}

// StagesSeen returns every stream split so far.
func (r *Recorder) StagesSeen() []probe.StreamStages {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.stages)
}
