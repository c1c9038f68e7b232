package tunnel

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Reconnect waves (SPEC.md "Reconnect waves"). A gateway tells connectors
// when to come back in three ways, and a connector bounds each:
//
//   - the upgrade's 101 answer carries reconnectWindowHeader, the window
//     over which this gateway wants its fleet's first retries spread after
//     an abrupt loss;
//   - a GOAWAY carries a per-session reconnect delay (goaway.go);
//   - a shed or draining connect is answered 503 with Retry-After.
//
// None of these hints is authenticated (only the GOAWAY is sealed), so a
// relay could forge them: the connector clamps every one to
// MaxReconnectDelay and waits at least minRetryAfter after a 503, so a
// hostile hint can delay a reconnect by minutes at most (a relay can deny
// service anyway) and never makes the connector spin.

// MaxReconnectDelay is the longest a gateway hint can make a connector
// wait: longer Retry-After values, GOAWAY reconnect delays and reconnect
// windows are cut to it.
const MaxReconnectDelay = 5 * time.Minute

// minRetryAfter is the shortest wait after a 503, whatever its Retry-After
// says (0, a date in the past, garbage): a connector never redials a busy
// gateway in a loop.
const minRetryAfter = time.Second

// retryAfterJitter is added, uniformly drawn, to a Retry-After: the header
// counts whole seconds, and connectors told the same second should not all
// come back at its start.
const retryAfterJitter = time.Second

// reconnectWindowHeader is the 101 answer's header carrying the reconnect
// window in milliseconds (decimal digits).
const reconnectWindowHeader = "Liaison-Reconnect-Window"

// ErrGatewayBusy is matched (errors.Is) by the [*BusyError] a connect
// attempt reports in [Status].Err when the gateway shed it or was
// draining. Run retries it after the delay the gateway asked for.
var ErrGatewayBusy = errors.New("tunnel: gateway busy")

// BusyError is a connect answered 503 Service Unavailable with a
// Retry-After: the gateway was admitting connects at its limit
// (GatewayConfig.AcceptRate, MaxHandshakes), or draining for a restart.
// The connector waits RetryAfter plus up to a second of jitter.
type BusyError struct {
	// RetryAfter is the gateway's Retry-After, clamped to
	// [1s, MaxReconnectDelay].
	RetryAfter time.Duration
	// URL is the tunnel URL the connector dialled.
	URL string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("tunnel: connect: the gateway at %s is at its connect rate or restarting (HTTP 503): retrying after %v as it asked; if this persists, raise GatewayConfig.AcceptRate on the cloud", e.URL, e.RetryAfter)
}

// Is makes a BusyError match ErrGatewayBusy.
func (e *BusyError) Is(target error) bool { return target == ErrGatewayBusy }

// busyError returns a *BusyError for a 503 answer with a Retry-After,
// nil for anything else.
func busyError(tunnelURL string, resp *http.Response, now time.Time) error {
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		return nil
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return nil
	}
	return &BusyError{RetryAfter: parseRetryAfter(v, now), URL: tunnelURL}
}

// parseRetryAfter reads a Retry-After value (RFC 9110 10.2.3: delay in
// seconds or an HTTP date) and clamps it to [minRetryAfter,
// MaxReconnectDelay]. An unreadable value counts as the minimum.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	var d time.Duration
	if secs, ok := parseDigits(v); ok {
		d = MaxReconnectDelay
		if secs < uint64(MaxReconnectDelay/time.Second) {
			d = time.Duration(secs) * time.Second
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, minRetryAfter), MaxReconnectDelay)
}

// parseReconnectWindow reads reconnectWindowHeader: milliseconds, clamped
// to MaxReconnectDelay. ok is false for a missing or unreadable value.
func parseReconnectWindow(v string) (time.Duration, bool) {
	ms, ok := parseDigits(strings.TrimSpace(v))
	if !ok {
		return 0, false
	}
	if ms >= uint64(MaxReconnectDelay/time.Millisecond) {
		return MaxReconnectDelay, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// parseDigits parses 1 to 18 ASCII digits (no sign, no space); longer
// runs saturate, so the value never overflows.
func parseDigits(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1e17 {
			n = n*10 + uint64(c-'0')
		}
	}
	return n, true
}

func formatReconnectWindow(d time.Duration) string {
	return strconv.FormatInt(int64(d/time.Millisecond), 10)
}
