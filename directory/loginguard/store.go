package loginguard

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Outcome ends a reserved attempt.
type Outcome int

// Outcomes of an attempt.
const (
	Neutral Outcome = iota // neither a failure nor a success (not tried, or not this key's business)
	Failure                // counts against the key for the window
	Success                // clears the key's failures
)

// Store keeps failure counters by key. Keys are short ASCII strings
// ([A-Za-z0-9._-]). An implementation shared by several nodes makes the
// limits hold across them; it must make Reserve atomic (two nodes may not
// both take the last slot), and must count a reservation that is never
// released (a node died mid-check, a Release that failed) as a failure
// until the window has passed: the guard ignores Release errors.
type Store interface {
	// Reserve takes one attempt on key unless its failures within window
	// plus its attempts in flight reach max; then it returns a
	// *ThrottledError. Every nil return is followed by one Release.
	Reserve(ctx context.Context, key string, max int, window time.Duration) error
	// Release ends one reserved attempt on key with its outcome.
	Release(ctx context.Context, key string, o Outcome) error
}

// MemoryConfig configures a [MemoryStore]. Zero fields take the defaults.
type MemoryConfig struct {
	// MaxKeys bounds the counters held at once. Counters with no failure
	// in their window and nothing in flight are dropped as needed; when
	// MaxKeys counters are all live (a spray of more distinct names or
	// sources than that within the window), attempts on new keys are
	// throttled until the oldest live counter expires: the store fails
	// closed rather than forget a failure. Default 100 000 (about 25 MB,
	// measured with one failure each).
	MaxKeys int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// MemoryStore is a [Store] in this process's memory, for one node.
type MemoryStore struct {
	maxKeys int
	now     func() time.Time

	mu   sync.Mutex
	keys map[string]*list.Element // of *counter
	lru  *list.List               // least recently touched first
}

var _ Store = (*MemoryStore)(nil)

type counter struct {
	key      string
	window   time.Duration
	failures []time.Time // oldest first, at most max
	inflight int
	touched  time.Time
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(cfg MemoryConfig) *MemoryStore {
	s := &MemoryStore{maxKeys: cfg.MaxKeys, now: cfg.Now, keys: map[string]*list.Element{}, lru: list.New()}
	if s.maxKeys <= 0 {
		s.maxKeys = 100_000
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Reserve implements [Store].
func (s *MemoryStore) Reserve(_ context.Context, key string, max int, window time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expire(now)
	var c *counter
	if e := s.keys[key]; e != nil {
		c = e.Value.(*counter)
		s.lru.MoveToBack(e)
	} else {
		if len(s.keys) >= s.maxKeys {
			oldest := s.lru.Front().Value.(*counter)
			return &ThrottledError{RetryAfter: retry(oldest.touched.Add(oldest.window).Sub(now))}
		}
		c = &counter{key: key}
		s.keys[key] = s.lru.PushBack(c)
	}
	c.window = window
	c.touched = now
	c.prune(now)
	if len(c.failures)+c.inflight >= max {
		if len(c.failures) < max || max <= 0 {
			// Blocked by attempts in flight: they end within a request's time.
			return &ThrottledError{RetryAfter: time.Second}
		}
		return &ThrottledError{RetryAfter: retry(c.failures[len(c.failures)-max].Add(window).Sub(now))}
	}
	c.inflight++
	return nil
}

// Release implements [Store].
func (s *MemoryStore) Release(_ context.Context, key string, o Outcome) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.keys[key]
	if e == nil {
		return nil
	}
	c := e.Value.(*counter)
	now := s.now()
	if c.inflight > 0 {
		c.inflight--
	}
	switch o {
	case Failure:
		c.failures = append(c.failures, now)
		c.touched = now
		s.lru.MoveToBack(e)
	case Success:
		c.failures = nil
	}
	c.prune(now)
	if c.inflight == 0 && len(c.failures) == 0 {
		s.lru.Remove(e)
		delete(s.keys, key)
	}
	return nil
}

// expire drops counters, least recently touched first, whose window has
// passed since their last touch with nothing in flight. A counter's
// failures are never newer than its last touch, so the first live one ends
// the sweep: amortised O(1) per call. (Counters left with no failure and
// nothing in flight are dropped by Release at once.)
func (s *MemoryStore) expire(now time.Time) {
	for e := s.lru.Front(); e != nil; e = s.lru.Front() {
		c := e.Value.(*counter)
		if c.inflight > 0 || now.Sub(c.touched) < c.window {
			return
		}
		s.lru.Remove(e)
		delete(s.keys, c.key)
	}
}

func (c *counter) prune(now time.Time) {
	i := 0
	for i < len(c.failures) && now.Sub(c.failures[i]) >= c.window {
		i++
	}
	c.failures = c.failures[i:]
}

// retry rounds a wait up to whole seconds (what HTTP's Retry-After
// carries), at least one.
func retry(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

// Len returns how many counters the store holds.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}
