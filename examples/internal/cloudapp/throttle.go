package cloudapp

import (
	"sync"
	"time"
)

// throttle counts failed logins per account in a sliding window. acquire
// reserves an attempt (in-flight attempts count as failures, so a burst of
// parallel guesses cannot exceed the limit); release records its outcome.
type throttle struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	state map[string]*attempts
}

type attempts struct {
	failures []time.Time
	inflight int
}

func newThrottle(max int, window time.Duration, now func() time.Time) *throttle {
	return &throttle{max: max, window: window, now: now, state: map[string]*attempts{}}
}

func (t *throttle) acquire(key string) (release func(failed bool), ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	a := t.state[key]
	if a == nil {
		if len(t.state) > 100_000 {
			t.sweep(now)
		}
		a = &attempts{}
		t.state[key] = a
	}
	a.prune(now, t.window)
	if len(a.failures)+a.inflight >= t.max {
		return nil, false
	}
	a.inflight++
	var once sync.Once
	return func(failed bool) {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			a.inflight--
			if failed {
				a.failures = append(a.failures, t.now())
			} else {
				a.failures = a.failures[:0] // a success resets the count, as AD does
			}
		})
	}, true
}

func (a *attempts) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(a.failures) && now.Sub(a.failures[i]) >= window {
		i++
	}
	a.failures = a.failures[i:]
}

// sweep drops idle accounts, bounding memory under a spray of names.
func (t *throttle) sweep(now time.Time) {
	for k, a := range t.state {
		a.prune(now, t.window)
		if len(a.failures) == 0 && a.inflight == 0 {
			delete(t.state, k)
		}
	}
}
