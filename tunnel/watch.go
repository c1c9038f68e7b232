package tunnel

import (
	"fmt"
	"sync"
	"time"
)

// watchSteps is how many sweeps a silenceWatch makes per ping interval: a
// silent connector is declared dead between three intervals and three and
// a tenth after its last frame (SPEC.md "Liveness and draining").
const watchSteps = 10

// silenceWatch is the gateway's liveness check for all its sessions: one
// timer that sweeps every session's time of last receipt a tenth of a
// ping interval apart, instead of one timer per session.
//
// A timer per session fired every ten to fifteen seconds at the default
// interval, each time on a new goroutine and usually waking a thread:
// with 10 000 idle sessions, about 800 wake-ups a second, 40 % of the
// gateway's heartbeat CPU (BENCHMARKS.md "Issue 13, one silence watch").
// A sweep reads two atomics per session; its cost is inside the figure
// above.
//
// The timer is armed only while a session is watched, so a gateway with no
// sessions has no timer pending.
type silenceWatch struct {
	every time.Duration

	mu       sync.Mutex
	sessions []*Session  // Session.watchIdx is the index here plus one
	t        *time.Timer // armed while sessions is not empty
}

func newSilenceWatch(pingInterval time.Duration) *silenceWatch {
	return &silenceWatch{every: max(pingInterval/watchSteps, time.Millisecond)}
}

// add starts watching s. The caller holds s.mu and has seen s.err unset,
// so closeWith, which sets s.err under s.mu before it calls remove, cannot
// leave s watched.
func (w *silenceWatch) add(s *Session) {
	w.mu.Lock()
	w.sessions = append(w.sessions, s)
	s.watchIdx = len(w.sessions)
	if w.t == nil {
		w.t = time.AfterFunc(w.every, w.sweep)
	}
	w.mu.Unlock()
}

// remove stops watching s; removing a session not watched does nothing.
func (w *silenceWatch) remove(s *Session) {
	w.mu.Lock()
	if i := s.watchIdx; i > 0 {
		n := len(w.sessions)
		last := w.sessions[n-1]
		w.sessions[i-1], last.watchIdx = last, i
		w.sessions[n-1] = nil
		w.sessions = w.sessions[:n-1]
		s.watchIdx = 0
	}
	if len(w.sessions) == 0 && w.t != nil {
		w.t.Stop()
		w.t = nil
	}
	w.mu.Unlock()
}

// sweep closes every watched session that received nothing for its
// silence threshold, or whose write in progress has taken three ping
// intervals (the peer reads nothing), and re-arms the timer.
func (w *silenceWatch) sweep() {
	type verdict struct {
		s   *Session
		err error
	}
	var dead []verdict
	now := monoNow()
	w.mu.Lock()
	for _, s := range w.sessions {
		if err := s.silence(now); err != nil {
			dead = append(dead, verdict{s, err})
		}
	}
	if w.t != nil {
		// Reset, not a new timer: this may be a sweep of a timer that
		// remove stopped after it fired; then w.t is its successor, and
		// there is still one timer.
		w.t.Reset(w.every)
	}
	w.mu.Unlock()
	// Each on its own goroutine, as its own timer did: closing a TLS
	// connection with no write in flight sends close_notify, which can
	// wait up to 5 s for room in a dead peer's socket buffer.
	for _, d := range dead {
		d.s.goWG(func() { d.s.closeWith(d.err) }) // removes d.s from the watch
	}
}

// silence reports why the session is to be closed for silence at now (a
// monoNow reading), or nil. It reads only atomics and fields fixed at
// creation.
func (s *Session) silence(now int64) error {
	if time.Duration(now-s.lastRecv.Load()) >= s.silentAfter() {
		return ErrPeerSilent
	}
	if ws := s.wstart.Load(); ws != 0 && time.Duration(now-ws) >= 3*s.cfg.params.pingInterval {
		return fmt.Errorf("%w: one write took that long (the peer reads nothing)", ErrPeerSilent)
	}
	return nil
}

// monoEpoch anchors monoNow.
var monoEpoch = time.Now()

// monoNow is the liveness clock: nanoseconds of the monotonic clock since
// monoEpoch, plus one (never 0, which means "none" in Session.wstart).
// Liveness is judged by timers, which run on the monotonic clock, so a
// wall-clock step cannot make a session look silent; and it is read on
// every message received and every write, where time.Now, which reads the
// wall clock too, cost about 25 ns more per reading (BENCHMARKS.md).
// Config.Now, a wall clock for tests, does not drive it.
func monoNow() int64 { return int64(time.Since(monoEpoch)) + 1 }
