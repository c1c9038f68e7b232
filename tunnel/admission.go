package tunnel

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Defaults of the gateway's connect admission (GatewayConfig.AcceptRate,
// MaxHandshakes).
const (
	// DefaultAcceptRate is the connects per second a gateway admits by
	// default: a fifth of what one core of a 2024 server handles (token
	// check, upgrade, signed X25519 handshake; about 0.4 ms), so a node
	// keeps serving calls during a reconnect wave.
	DefaultAcceptRate = 500
	// DefaultMaxHandshakes is the default cap on connects being admitted
	// at once: the accept rate times half a second, since a connect's
	// handshake takes about two round trips to the connector (often 100
	// ms or more each over the internet) plus its CPU time.
	DefaultMaxHandshakes = 256
)

// admission decides, before any work past TLS, whether a connect is
// served now or shed with a Retry-After. It is a token bucket (rate per
// second, burst of a tenth of a second's worth) plus a cap on connects in
// progress. Shed connects are promised consecutive slots at the rate the
// node admits connects: the accept rate, or less when the cap binds
// (maxBusy / the mean time a connect takes, as on a starved CPU). So a
// wave comes back spread at the rate the node can take instead of all at
// once.
type admission struct {
	rate     float64 // tokens per second; <= 0: no rate limit
	burst    float64
	maxBusy  int // <= 0: no cap
	interval time.Duration

	mu       sync.Mutex
	tokens   float64
	last     time.Time
	busy     int
	nextSlot time.Time
	took     time.Duration // moving average of an admitted connect's time
}

func newAdmission(rate float64, maxBusy int) *admission {
	a := &admission{rate: rate, maxBusy: maxBusy, interval: time.Second}
	if rate > 0 {
		a.burst = max(1, rate/10)
		a.tokens = a.burst
		a.interval = time.Duration(float64(time.Second) / rate)
	}
	return a
}

// enter admits a connect (then the caller calls leave with now once the
// handshake is over) or returns false and how long the connector should
// wait.
func (a *admission) enter(now time.Time) (bool, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rate > 0 {
		if !a.last.IsZero() && now.After(a.last) {
			a.tokens = min(a.burst, a.tokens+now.Sub(a.last).Seconds()*a.rate)
		}
		a.last = now
	}
	if (a.maxBusy <= 0 || a.busy < a.maxBusy) && (a.rate <= 0 || a.tokens >= 1) {
		if a.rate > 0 {
			a.tokens--
		}
		a.busy++
		return true, 0
	}
	return false, a.slotLocked(now)
}

// slot promises a shed connector the next free slot and returns how far
// ahead it is.
func (a *admission) slot(now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.slotLocked(now)
}

func (a *admission) slotLocked(now time.Time) time.Duration {
	s := a.nextSlot
	if s.Before(now) {
		s = now
	}
	s = s.Add(a.intervalLocked())
	if d := s.Sub(now); d > MaxReconnectDelay {
		return MaxReconnectDelay // the queue is full: do not push it further
	}
	a.nextSlot = s
	return s.Sub(now)
}

// intervalLocked is the time between two admitted connects at the rate
// the node admits: the accept rate, or less when connects take so long
// that the cap binds.
func (a *admission) intervalLocked() time.Duration {
	iv := a.interval
	if a.maxBusy > 0 {
		iv = max(iv, a.took/time.Duration(a.maxBusy))
	}
	return iv
}

// effectiveRate is the rate in connects per second the node admits now
// (see intervalLocked); <= 0 without any limit.
func (a *admission) effectiveRate() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rate <= 0 {
		return -1
	}
	return float64(time.Second) / float64(a.intervalLocked())
}

// leave ends a connect admitted at start.
func (a *admission) leave(start time.Time) {
	took := time.Since(start)
	a.mu.Lock()
	a.busy--
	a.took += (took - a.took) / 8
	a.mu.Unlock()
}

// reconnectWindow is the window over which a fleet of n connectors should
// spread its reconnects to a gateway admitting rate connects per second:
// n at four fifths of the rate, so that chance bunching does not tip the
// wave into shedding (each shed connect still costs a TLS handshake); at
// most MaxReconnectDelay; 0 without a rate limit.
func reconnectWindow(n int, rate float64) time.Duration {
	if rate <= 0 || n <= 0 {
		return 0
	}
	secs := float64(n) / (0.8 * rate)
	if secs >= MaxReconnectDelay.Seconds() {
		return MaxReconnectDelay
	}
	return time.Duration(secs * float64(time.Second))
}

// spreadDelays returns n reconnect delays spread evenly over [0, window)
// in random order: one per stratum of window/n, jittered within it, so
// the GOAWAYs of a drain bring connectors back at a constant rate.
func spreadDelays(n int, window time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	if n == 0 || window <= 0 {
		return out
	}
	step := float64(window) / float64(n)
	for i, j := range rand.Perm(n) { // not security relevant
		out[i] = time.Duration(step * (float64(j) + rand.Float64()))
	}
	return out
}

// shed answers a connect the gateway does not serve now: 503 with a
// Retry-After of at least one second, in whole seconds rounded up.
func shed(w http.ResponseWriter, retry time.Duration, why string) {
	secs := int64(math.Ceil(retry.Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	http.Error(w, why, http.StatusServiceUnavailable)
}
